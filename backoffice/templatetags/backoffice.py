"""Template helpers: money through common.money (the PDFs' formatter), times in a given timezone."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_date, format_datetime
from django import template

from common.money import DEFAULT_LOCALE, Formatter, format_money, format_money_display
from invoicing.pdf import inclusive_period

register = template.Library()


@register.filter
def money(amount, currency: str) -> str:
    """{{ invoice.total|money:invoice.currency }} → "$1,234.50", "¥14,300"."""
    if amount is None or amount == "" or not currency:
        return ""
    return format_money_display(amount if isinstance(amount, Decimal) else Decimal(str(amount)), currency)


@register.filter
def amount_input(amount, currency: str) -> str:
    """An amount as a form field takes it: "30.00", "1500" (JPY)."""
    if amount is None or amount == "":
        return ""
    return format_money(amount if isinstance(amount, Decimal) else Decimal(str(amount)), currency)


@register.filter
def price(amount, currency: str) -> str:
    if amount is None or amount == "":
        return ""
    return Formatter(currency=currency, locale=DEFAULT_LOCALE).price(amount)


@register.filter
def quantity(value) -> str:
    if value is None or value == "":
        return ""
    return Formatter(currency="USD", locale=DEFAULT_LOCALE).quantity(value)


def _zone(name: str | None):
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@register.filter
def in_tz(value, tz_name: str | None = None) -> str:
    """A timestamp in the customer's timezone: "Mar 5, 2026, 14:03 CET"."""
    if not value:
        return ""
    if isinstance(value, datetime):
        return format_datetime(value.astimezone(_zone(tz_name)), "MMM d, y, HH:mm zzz", locale="en")
    return day(value)


@register.filter
def day(value) -> str:
    if isinstance(value, datetime):
        value = value.date()
    return format_date(value, format="medium", locale="en") if isinstance(value, date) else ""


@register.simple_tag
def period(start, end) -> str:
    return inclusive_period(start, end)


@register.filter
def get_item(mapping, key):
    return mapping.get(key) if hasattr(mapping, "get") else None


@register.filter
def ratio(value) -> str:
    """A rate stored as a fraction ("0.9500") → "95.0%"; empty when there is none."""
    if value is None or value == "":
        return "—"
    return f"{(Decimal(str(value)) * 100).quantize(Decimal('0.1'))}%"


@register.filter
def humanize_key(value) -> str:
    """"prior_period_collected" → "Prior period collected"."""
    text = str(value or "").replace("_", " ")
    return text[:1].upper() + text[1:]


def _evidence_text(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{humanize_key(k).lower()} {_evidence_text(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, dict) for v in value) and value:
            return "; ".join(_evidence_text(v) for v in value)
        return ", ".join(_evidence_text(v) for v in value)
    return str(value)


@register.filter
def evidence(inputs) -> list[tuple[str, str]]:
    """An anomaly's baseline inputs (window, same-weekday values, median, MAD, threshold; an invoice
    spike's recent invoices and factor) as labelled text, never raw JSON."""
    if not isinstance(inputs, dict):
        return []
    return [(humanize_key(key), _evidence_text(value)) for key, value in inputs.items()]


@register.filter
def as_json(value) -> str:
    """A value as compact JSON text (for a form's example or placeholder; escaped by the template)."""
    return json.dumps(value, default=str)
