"""The rating engine: quantity + charge → amount with its tier breakdown. Pure: no database, no I/O.

Rules (DESIGN.md §2–3):
- Decimal only. Unit prices are exact (up to 12 decimal places); nothing is rounded until the
  charge's total, which is quantized half up to the currency exponent ONCE (`RatedCharge.amount`).
- `RatedCharge.tiers` is the breakdown; its `amount`s are unrounded and sum exactly to the
  unrounded charge (the invoice line rounds the sum, never the rows).
- Tier bounds are half-open on the left: a row with `from_unit=50, to_unit=100` holds the units
  in (50, 100]; `up_to` is inclusive, so q = 50 lies entirely in the first tier.
- A negative quantity (e.g. a `latest` metric below zero) is rated as zero usage.
- Zero usage costs nothing in every model: a tier's flat fee applies once a unit falls in it.

Models (quantity `q`):
- standard:   q × unit_amount.
- package:    ceil(max(q − free_units, 0) / package_size) × amount.
- graduated:  Σ over tiers reached (units_in_tier × unit_amount + flat_amount).
- volume:     the tier containing q prices every unit: q × unit_amount + flat_amount.
- percentage: rate% × q + fixed_amount × event_count. `free_units` is a number of free events
  (the first N by timestamp pay neither the rate nor the fixed fee). `min_per_transaction` /
  `max_per_transaction` clamp each event's fee (rate part + fixed fee). Both need the events'
  values in timestamp order (`event_values`); when given, they are the basis of the charge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import TYPE_CHECKING

from common.money import format_price, format_quantity, parse_decimal, quantize_money

if TYPE_CHECKING:  # pragma: no cover
    from catalog.models import Charge

ZERO = Decimal(0)
HUNDRED = Decimal(100)
MODELS = ("standard", "package", "graduated", "volume", "percentage")


class RatingError(ValueError):
    """The charge properties or inputs cannot be rated (validation should have caught it)."""


@dataclass(frozen=True)
class TierBreakdown:
    from_unit: Decimal
    to_unit: Decimal | None
    units: Decimal
    unit_amount: Decimal
    flat_amount: Decimal
    amount: Decimal

    def as_dict(self) -> dict:
        return {
            "from": format_quantity(self.from_unit),
            "to": None if self.to_unit is None else format_quantity(self.to_unit),
            "units": format_quantity(self.units),
            "unit_amount": format_quantity(self.unit_amount),
            "flat_amount": format_quantity(self.flat_amount),
            "amount": format_quantity(self.amount),
        }


@dataclass(frozen=True)
class RatedCharge:
    model: str
    quantity: Decimal
    amount: Decimal
    unit_amount: Decimal | None
    tiers: tuple[TierBreakdown, ...]
    description: str

    @property
    def unrounded_amount(self) -> Decimal:
        return sum((t.amount for t in self.tiers), ZERO)

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "quantity": format_quantity(self.quantity),
            "amount": f"{self.amount:f}",
            "unit_amount": None if self.unit_amount is None else format_quantity(self.unit_amount),
            "tiers": [t.as_dict() for t in self.tiers],
            "description": self.description,
        }


# --- public API ---------------------------------------------------------------------------------

def rate(*, model: str, properties: dict, quantity: Decimal, currency: str, event_count: int = 0,
         event_values: Sequence[Decimal] | None = None) -> RatedCharge:
    """Rate one charge for one period. `quantity` is the metric's aggregated value."""
    if not isinstance(quantity, Decimal):
        quantity = _dec(quantity, "quantity")
    q = max(quantity, ZERO)
    props = properties or {}
    if model == "standard":
        raw, unit, tiers, text = _standard(props, q, currency)
    elif model == "package":
        raw, unit, tiers, text = _package(props, q, currency)
    elif model == "graduated":
        raw, unit, tiers, text = _graduated(props, q, currency)
    elif model == "volume":
        raw, unit, tiers, text = _volume(props, q, currency)
    elif model == "percentage":
        raw, unit, tiers, text = _percentage(props, q, currency, event_count, event_values)
    else:
        raise RatingError(f"Unknown charge model '{model}'.")
    return RatedCharge(model=model, quantity=quantity, amount=quantize_money(raw, currency), unit_amount=unit,
                       tiers=tuple(tiers), description=text)


def rate_charge(*, charge: "Charge", quantity: Decimal, currency: str, event_count: int = 0,
                event_values: Sequence[Decimal] | None = None) -> RatedCharge:
    return rate(model=charge.model, properties=charge.properties, quantity=quantity, currency=currency,
                event_count=event_count, event_values=event_values)


def minimum_commitment_true_up(*, minimum: Decimal | None, subtotal: Decimal, currency: str) -> Decimal:
    """Shortfall of the period's subtotal (base fee + usage, before discounts and tax) below the
    minimum commitment; never negative. Quantized to the currency."""
    if minimum is None:
        return quantize_money(ZERO, currency)
    return quantize_money(max(minimum - subtotal, ZERO), currency)


def needs_event_values(*, model: str, properties: dict) -> bool:
    """True when the charge must see each event's value in timestamp order (not just the total)."""
    if model != "percentage":
        return False
    props = properties or {}
    free = parse_decimal(props.get("free_units", 0)) or ZERO
    return free > 0 or props.get("min_per_transaction") is not None or props.get("max_per_transaction") is not None


def rate_projected(*, model: str, properties: dict, quantity: Decimal, currency: str, event_count: int,
                   event_values: Sequence[Decimal] | None = None, extra_events: int = 0,
                   extra_value: Decimal = ZERO) -> Decimal:
    """A forecast amount: the charge on the known usage (`event_values` when the charge needs them)
    plus `extra_events` future events of `extra_value` each, priced as the charge prices one event
    (after the remaining free events, each fee clamped by the per-event minimum/maximum).
    For charges that do not need per-event values this is simply the charge on `quantity`."""
    if not needs_event_values(model=model, properties=properties):
        return rate(model=model, properties=properties, quantity=quantity, currency=currency,
                    event_count=event_count).amount
    known = list(event_values or ())
    rated = rate(model=model, properties=properties, quantity=quantity, currency=currency,
                 event_count=len(known), event_values=known)
    props = properties or {}
    free_left = max(int(_dec(props.get("free_units", 0), "free_units")) - len(known), 0)
    billable = max(int(extra_events) - free_left, 0)
    if not billable:
        return rated.amount
    fee = extra_value * _dec(props.get("rate"), "rate") / HUNDRED + _dec(props.get("fixed_amount", 0), "fixed_amount")
    minimum = _optional_dec(props.get("min_per_transaction"), "min_per_transaction")
    maximum = _optional_dec(props.get("max_per_transaction"), "max_per_transaction")
    if minimum is not None and fee < minimum:
        fee = minimum
    if maximum is not None and fee > maximum:
        fee = maximum
    return quantize_money(rated.unrounded_amount + billable * fee, currency)


# --- models --------------------------------------------------------------------------------------

def _standard(props: Mapping, q: Decimal, currency: str):
    unit = _dec(props.get("unit_amount"), "unit_amount")
    amount = q * unit
    row = TierBreakdown(from_unit=ZERO, to_unit=None, units=q, unit_amount=unit, flat_amount=ZERO, amount=amount)
    return amount, unit, [row], f"{format_quantity(q)} × {format_price(unit, currency)}"


def _package(props: Mapping, q: Decimal, currency: str):
    size = _dec(props.get("package_size"), "package_size")
    price = _dec(props.get("amount"), "amount")
    free = _dec(props.get("free_units", 0), "free_units")
    if size <= 0:
        raise RatingError("package_size must be positive.")
    billable = max(q - free, ZERO)
    packages = (billable / size).to_integral_value(rounding=ROUND_CEILING) if billable else ZERO
    amount = packages * price
    rows = []
    if free > 0 and q > 0:
        rows.append(TierBreakdown(from_unit=ZERO, to_unit=free, units=min(q, free), unit_amount=ZERO,
                                  flat_amount=ZERO, amount=ZERO))
    if billable > 0:
        rows.append(TierBreakdown(from_unit=free, to_unit=None, units=billable, unit_amount=ZERO,
                                  flat_amount=amount, amount=amount))
    text = f"{format_quantity(packages)} × {format_price(price, currency)} (packages of {format_quantity(size)})"
    if free > 0:
        text += f", {format_quantity(free)} free"
    return amount, None, rows, text


def _tiers(props: Mapping) -> list[tuple[Decimal, Decimal | None, Decimal, Decimal]]:
    """[(from, to, unit_amount, flat_amount)], validated enough to rate safely."""
    raw = props.get("tiers")
    if not isinstance(raw, list) or not raw:
        raise RatingError("tiers must be a non-empty list.")
    out, previous = [], ZERO
    for index, tier in enumerate(raw):
        up_to = tier.get("up_to")
        to = None if up_to is None else _dec(up_to, f"tiers[{index}].up_to")
        if to is not None and to <= previous:
            raise RatingError("tiers must ascend.")
        if to is None and index != len(raw) - 1:
            raise RatingError("only the last tier may be open.")
        out.append((previous, to, _dec(tier.get("unit_amount"), f"tiers[{index}].unit_amount"),
                    _dec(tier.get("flat_amount", 0), f"tiers[{index}].flat_amount")))
        previous = to if to is not None else previous
    if out[-1][1] is not None:
        raise RatingError("the last tier must be open (up_to null).")
    return out


def _graduated(props: Mapping, q: Decimal, currency: str):
    rows, parts = [], []
    for low, high, unit, flat in _tiers(props):
        if q <= low:
            break
        units = (q if high is None else min(q, high)) - low
        amount = units * unit + flat
        rows.append(TierBreakdown(from_unit=low, to_unit=high, units=units, unit_amount=unit, flat_amount=flat,
                                  amount=amount))
        parts.append(f"{format_quantity(units)} × {format_price(unit, currency)}")
        if flat:
            parts.append(f"{format_price(flat, currency)} flat")
    total = sum((r.amount for r in rows), ZERO)
    return total, None, rows, " + ".join(parts) if parts else "no usage"


def _volume(props: Mapping, q: Decimal, currency: str):
    tiers = _tiers(props)
    low, high, unit, flat = next(t for t in tiers if t[1] is None or q <= t[1])
    if q <= 0:
        return ZERO, unit, [], "no usage"
    amount = q * unit + flat
    row = TierBreakdown(from_unit=low, to_unit=high, units=q, unit_amount=unit, flat_amount=flat, amount=amount)
    text = f"{format_quantity(q)} × {format_price(unit, currency)}"
    if flat:
        text += f" + {format_price(flat, currency)} flat"
    return amount, unit, [row], text


def _percentage(props: Mapping, q: Decimal, currency: str, event_count: int,
                event_values: Sequence[Decimal] | None):
    rate_pct = _dec(props.get("rate"), "rate")
    fixed = _dec(props.get("fixed_amount", 0), "fixed_amount")
    free = int(_dec(props.get("free_units", 0), "free_units"))
    minimum = _optional_dec(props.get("min_per_transaction"), "min_per_transaction")
    maximum = _optional_dec(props.get("max_per_transaction"), "max_per_transaction")
    fraction = rate_pct / HUNDRED
    rows: list[TierBreakdown] = []

    if event_values is None:
        if needs_event_values(model="percentage", properties=props):
            raise RatingError("this percentage charge (free events or per-event limits) needs event_values.")
        volume, billed_events, adjustment, free_events = q, max(int(event_count), 0), ZERO, 0
    else:
        values = [_dec(v, "event_values") for v in event_values]
        free_events = min(free, len(values))
        billed = values[free_events:]
        volume, billed_events, adjustment = sum(billed, ZERO), len(billed), ZERO
        for value in billed:
            fee = value * fraction + fixed
            clamped = fee
            if minimum is not None and clamped < minimum:
                clamped = minimum
            if maximum is not None and clamped > maximum:
                clamped = maximum
            adjustment += clamped - fee
        if free_events:
            free_volume = sum(values[:free_events], ZERO)
            rows.append(TierBreakdown(from_unit=ZERO, to_unit=Decimal(free_events), units=free_volume,
                                      unit_amount=ZERO, flat_amount=ZERO, amount=ZERO))

    rate_amount = volume * fraction
    rows.append(TierBreakdown(from_unit=ZERO, to_unit=None, units=volume, unit_amount=fraction, flat_amount=ZERO,
                              amount=rate_amount))
    text = f"{format_quantity(rate_pct)}% × {format_price(volume, currency)}"
    if fixed and billed_events:
        rows.append(TierBreakdown(from_unit=ZERO, to_unit=None, units=Decimal(billed_events), unit_amount=fixed,
                                  flat_amount=ZERO, amount=fixed * billed_events))
        text += f" + {billed_events} × {format_price(fixed, currency)}"
    if adjustment:
        rows.append(TierBreakdown(from_unit=ZERO, to_unit=None, units=ZERO, unit_amount=ZERO, flat_amount=adjustment,
                                  amount=adjustment))
        sign = "+" if adjustment > 0 else "−"
        text += f" {sign} {format_price(abs(adjustment), currency)} per-event min/max adjustment"
    if free_events:
        text += f" (first {free_events} events free)"
    total = sum((r.amount for r in rows), ZERO)
    return total, None, rows, text


# --- helpers -------------------------------------------------------------------------------------

def _dec(value: object, name: str) -> Decimal:
    result = parse_decimal(value)
    if result is None:
        raise RatingError(f"{name} must be a number, got {value!r}.")
    return result


def _optional_dec(value: object, name: str) -> Decimal | None:
    return None if value is None or value == "" else _dec(value, name)
