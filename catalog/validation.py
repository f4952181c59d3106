"""Validate and normalize charge properties (API.md shapes) before they are stored.

`charge_properties_normalize` returns a canonical dict with every decimal stored as an exact
string ("0.004", "5.00"), counts as integers and `up_to` as an integer when integral. Every
problem is reported under the full property path, e.g.
`{"charges[0].properties.tiers[1].up_to": ["must be greater than the previous tier's up_to (50)"]}`.
"""

from __future__ import annotations

import re
from decimal import Decimal

from common.errors import ApplicationError
from common.money import UNIT_PRICE_PLACES, currency_exponent, format_quantity, parse_decimal

MAX_INTEGER_DIGITS = 16  # PRICE_FIELD: 28 digits, 12 of them decimals
CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,119}$")

ALLOWED_KEYS = {
    "standard": {"unit_amount"},
    "package": {"package_size", "amount", "free_units"},
    "graduated": {"tiers"},
    "volume": {"tiers"},
    "percentage": {"rate", "fixed_amount", "free_units", "min_per_transaction", "max_per_transaction"},
}
TIER_KEYS = {"up_to", "unit_amount", "flat_amount", "from_value"}
CHARGE_MODELS = tuple(ALLOWED_KEYS)


class Errors:
    """Collects {field path: [messages]} and raises them as one 400."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        self.fields.setdefault(path, []).append(message)

    def merge(self, other: "Errors") -> None:
        for path, messages in other.fields.items():
            self.fields.setdefault(path, []).extend(messages)

    def raise_if_any(self, message: str = "Invalid charge properties.") -> None:
        if self.fields:
            first, messages = next(iter(self.fields.items()))
            raise ApplicationError(f"{message} {first}: {messages[0]}", code="invalid", fields=self.fields)


def price_to_string(value: Decimal) -> str:
    """Exact storage form of a validated price: keeps the caller's scale, drops exponent notation."""
    return f"{value:f}"


def parse_price(errors: Errors, path: str, value: object, *, required: bool = True, allow_null: bool = False,
                max_places: int = UNIT_PRICE_PLACES) -> Decimal | None:
    """A non-negative decimal with at most `max_places` decimals, or None (recording an error)."""
    if value is None or value == "":
        if allow_null and value is None:
            return None
        if required or value == "":
            errors.add(path, "This field is required." if value is None else "must be a number.")
        return None
    if isinstance(value, (dict, list)):
        errors.add(path, "must be a decimal number (string or number).")
        return None
    number = parse_decimal(value)
    if number is None:
        errors.add(path, f"'{value}' is not a decimal number.")
        return None
    if number < 0:
        errors.add(path, "must not be negative.")
        return None
    if number.as_tuple().exponent < -max_places:
        normalized = number.normalize()
        if normalized.as_tuple().exponent < -max_places:
            errors.add(path, f"at most {max_places} decimal places.")
            return None
        number = normalized
    if number.adjusted() >= MAX_INTEGER_DIGITS:
        errors.add(path, "is too large.")
        return None
    return number + 0 if number == 0 else number  # "-0" → "0"


def parse_count(errors: Errors, path: str, value: object, *, minimum: int = 0, default: int | None = None) -> int | None:
    if value is None:
        if default is not None:
            return default
        errors.add(path, "This field is required.")
        return None
    number = parse_decimal(value) if not isinstance(value, (dict, list)) else None
    if number is None or number != number.to_integral_value():
        errors.add(path, "must be a whole number.")
        return None
    if number < minimum:
        errors.add(path, f"must be at least {minimum}.")
        return None
    if number.adjusted() >= MAX_INTEGER_DIGITS:
        errors.add(path, "is too large.")
        return None
    return int(number)


def charge_properties_normalize(*, model: str, properties: object, currency: str | None = None,
                                path: str = "properties") -> dict:
    """Validate `properties` for `model`; return the canonical dict or raise ApplicationError (400)."""
    errors = Errors()
    result = _normalize(errors, model=model, properties=properties, currency=currency, path=path)
    errors.raise_if_any()
    return result


def _normalize(errors: Errors, *, model: str, properties: object, currency: str | None, path: str) -> dict:
    if not isinstance(model, str) or model not in ALLOWED_KEYS:
        errors.add(path.rsplit(".", 1)[0] + ".model" if "." in path else "model",
                   f"'{model}' is not a charge model; choose from {', '.join(CHARGE_MODELS)}.")
        return {}
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        errors.add(path, "must be an object.")
        return {}
    props = dict(properties)
    if "currency" in props:
        given = props.pop("currency")
        if currency is None or str(given).upper() != currency:
            errors.add(f"{path}.currency",
                       f"Charges are priced in the plan's currency ({currency}); '{given}' does not match.")
    for key in sorted(set(props) - ALLOWED_KEYS[model]):
        errors.add(f"{path}.{key}", f"unknown property for a {model} charge; allowed: {', '.join(sorted(ALLOWED_KEYS[model]))}.")
    handler = {"standard": _standard, "package": _package, "graduated": _tiers, "volume": _tiers,
               "percentage": _percentage}[model]
    return handler(errors, props, path, currency)


def _standard(errors: Errors, props: dict, path: str, currency: str | None) -> dict:
    unit = parse_price(errors, f"{path}.unit_amount", props.get("unit_amount"))
    return {"unit_amount": price_to_string(unit)} if unit is not None else {}


def _package(errors: Errors, props: dict, path: str, currency: str | None) -> dict:
    size = parse_count(errors, f"{path}.package_size", props.get("package_size"), minimum=1)
    amount = parse_price(errors, f"{path}.amount", props.get("amount"))
    free = parse_count(errors, f"{path}.free_units", props.get("free_units"), default=0)
    if None in (size, amount, free):
        return {}
    return {"package_size": size, "amount": price_to_string(amount), "free_units": free}


def _tiers(errors: Errors, props: dict, path: str, currency: str | None) -> dict:
    tiers = props.get("tiers")
    tiers_path = f"{path}.tiers"
    if not isinstance(tiers, list) or not tiers:
        errors.add(tiers_path, "must be a non-empty list of tiers.")
        return {}
    out: list[dict] = []
    previous: Decimal = Decimal(0)
    before = len(errors.fields)
    for index, tier in enumerate(tiers):
        tier_path = f"{tiers_path}[{index}]"
        if not isinstance(tier, dict):
            errors.add(tier_path, "must be an object with up_to, unit_amount and flat_amount.")
            continue
        for key in sorted(set(tier) - TIER_KEYS):
            errors.add(f"{tier_path}.{key}", "unknown tier property; allowed: up_to, unit_amount, flat_amount.")
        last = index == len(tiers) - 1
        if "up_to" not in tier:
            errors.add(f"{tier_path}.up_to", "This field is required (null for the last, open tier).")
            up_to = None
        elif tier["up_to"] is None:
            up_to = None
            if not last:
                errors.add(f"{tier_path}.up_to", "only the last tier may be open (null).")
        else:
            up_to = parse_price(errors, f"{tier_path}.up_to", tier["up_to"])
            if up_to is not None:
                if last:
                    errors.add(f"{tier_path}.up_to", "the last tier must be open: up_to null.")
                elif up_to <= previous:
                    errors.add(f"{tier_path}.up_to",
                               f"must be greater than the previous tier's up_to ({format_quantity(previous)}); tiers ascend.")
        if "from_value" in tier:
            start = parse_price(errors, f"{tier_path}.from_value", tier["from_value"])
            contiguous = {previous, previous + 1} if previous == previous.to_integral_value() else {previous}
            if index == 0:
                contiguous = {Decimal(0), Decimal(1)}
            if start is not None and start not in contiguous:
                errors.add(f"{tier_path}.from_value",
                           f"leaves a gap or overlap: the tier must start right after {format_quantity(previous)}.")
        unit = parse_price(errors, f"{tier_path}.unit_amount", tier.get("unit_amount"))
        flat = parse_price(errors, f"{tier_path}.flat_amount", tier.get("flat_amount", "0"))
        if unit is not None and flat is not None:
            out.append({
                "up_to": None if up_to is None else (int(up_to) if up_to == up_to.to_integral_value() else price_to_string(up_to)),
                "unit_amount": price_to_string(unit),
                "flat_amount": price_to_string(flat),
            })
        if up_to is not None and up_to > previous:
            previous = up_to
    return {"tiers": out} if len(errors.fields) == before else {}


def _percentage(errors: Errors, props: dict, path: str, currency: str | None) -> dict:
    rate = parse_price(errors, f"{path}.rate", props.get("rate"))
    if rate is not None and rate > 100:
        errors.add(f"{path}.rate", "is a percentage: at most 100.")
        rate = None
    fixed = parse_price(errors, f"{path}.fixed_amount", props.get("fixed_amount", "0"))
    free = parse_count(errors, f"{path}.free_units", props.get("free_units"), default=0)
    minimum = parse_price(errors, f"{path}.min_per_transaction", props.get("min_per_transaction"), required=False,
                          allow_null=True)
    maximum = parse_price(errors, f"{path}.max_per_transaction", props.get("max_per_transaction"), required=False,
                          allow_null=True)
    if minimum is not None and maximum is not None and minimum > maximum:
        errors.add(f"{path}.max_per_transaction", "must not be below min_per_transaction.")
        return {}
    if None in (rate, fixed, free):
        return {}
    out = {"rate": price_to_string(rate), "fixed_amount": price_to_string(fixed), "free_units": free}
    if minimum is not None:
        out["min_per_transaction"] = price_to_string(minimum)
    if maximum is not None:
        out["max_per_transaction"] = price_to_string(maximum)
    return out


def money_places_check(errors: Errors, path: str, value: Decimal | None, currency: str) -> None:
    """Amounts that are money (not unit prices), e.g. a minimum commitment, fit the currency's minor unit."""
    if value is None:
        return
    places = currency_exponent(currency)
    if value.normalize().as_tuple().exponent < -places:
        errors.add(path, f"at most {places} decimal places for {currency}.")


def code_check(errors: Errors, path: str, code: str) -> None:
    if not CODE_RE.match(code or ""):
        errors.add(path, "use letters, digits, '_', '-', '.' or ':' (it appears in URLs).")
