"""Charge prices for people: the properties help text and a one-glance price summary."""

from __future__ import annotations

import json
from decimal import Decimal

from catalog.models import Charge
from common.money import format_price, parse_decimal

PROPERTIES_HELP = (
    'JSON. standard: {"unit_amount": "0.004"} · package: {"package_size": 1000, "amount": "5.00", "free_units": 0} · '
    'graduated / volume: {"tiers": [{"up_to": 50, "unit_amount": "40", "flat_amount": "0"}, '
    '{"up_to": null, "unit_amount": "35", "flat_amount": "0"}]} · percentage: {"rate": "2.9", "fixed_amount": "0.30", '
    '"free_units": 0, "min_per_transaction": null, "max_per_transaction": null}'
)


def pricing_summary(charge: Charge, currency: str) -> str:
    """A readable one-glance description of a charge's prices."""
    p = charge.properties or {}

    def price(key, default="0"):
        value = parse_decimal(p.get(key, default))
        return format_price(value, currency) if value is not None else str(p.get(key))

    if charge.model == "standard":
        return f"{price('unit_amount')} per unit"
    if charge.model == "package":
        text = f"{price('amount')} per {p.get('package_size')} units (each started package)"
        return text + (f", first {p['free_units']} free" if p.get("free_units") else "")
    if charge.model in ("graduated", "volume"):
        rows, low = [], Decimal(0)
        for tier in p.get("tiers", []):
            up_to = tier.get("up_to")
            bounds = f"{low:f} – {up_to}" if up_to is not None else f"above {low:f}"
            flat = parse_decimal(tier.get("flat_amount", 0)) or Decimal(0)
            row = f"{bounds}: {format_price(parse_decimal(tier.get('unit_amount')) or Decimal(0), currency)} per unit"
            rows.append(row + (f" + {format_price(flat, currency)} flat" if flat else ""))
            low = parse_decimal(up_to) if up_to is not None else low
        how = "each tier prices its own units" if charge.model == "graduated" else "the reached tier prices all units"
        return f"{how}: " + "; ".join(rows)
    if charge.model == "percentage":
        text = f"{p.get('rate')}% + {price('fixed_amount')} per event"
        if p.get("free_units"):
            text += f", first {p['free_units']} events free"
        if p.get("min_per_transaction") is not None:
            text += f", min {price('min_per_transaction')} per event"
        if p.get("max_per_transaction") is not None:
            text += f", max {price('max_per_transaction')} per event"
        return text
    return json.dumps(p)
