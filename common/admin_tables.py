"""Configuration in the Django admin as tables, not raw JSON (issue 18: "formatted money and no raw
JSON where a table reads better").

- `charge_properties_table`: a charge's properties as a table: graduated / volume tiers (units
  from – up to, price per unit, flat fee), a package (size, price, free units), a percentage
  (rate, fee per event, free events, per-event min / max), a standard unit price; prices through
  `common.money.Formatter` (the PDFs' formatter), so "$0.004", "¥500", "€1,000.00".
- `PropertiesTextarea`: the charge editor's JSON textarea (still validated exactly like the API by
  the catalog admin's form set) with a table preview of its current value under it.
- `DayListField`: a list of days typed as "1, 3, 6, 10" (or a JSON list), validated (whole days,
  0–365, ascending, no duplicates), for the dunning policy schedule.
- `dunning_schedule_table`: a dunning policy's schedule day by day (retries, e-mails, escalation,
  final action).
- `money_display` / `percent_display`: one value formatted per currency / as a percentage.

Ground floor (`common`): no app imports; the admin modules of catalog and dunning wire these in."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation

from django import forms
from django.core.exceptions import ValidationError
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from common.money import DEFAULT_LOCALE, Formatter

TABLE_STYLE = "border-collapse:collapse; margin:2px 0"
CELL = 'style="padding:2px 10px 2px 0; text-align:{}"'


def _dec(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _fmt(currency: str | None) -> Formatter | None:
    return Formatter(currency=currency, locale=DEFAULT_LOCALE) if currency else None


def _price(value, currency: str | None) -> str:
    number = _dec(value)
    if number is None:
        return "—" if value in (None, "") else str(value)
    fmt = _fmt(currency)
    return fmt.price(number) if fmt else f"{number.normalize():f}"


def _units(value) -> str:
    number = _dec(value)
    if number is None:
        return "∞" if value is None else str(value)
    return Formatter(currency="USD", locale=DEFAULT_LOCALE).quantity(number)


def html_table(headers: list[str], rows: list[list[str]], *, css_class: str = "config-table",
               right: set[int] | None = None) -> SafeString:
    """A small read-only table; `right` are the column indexes aligned right (numbers)."""
    right = right or set()
    head = format_html_join("", "<th " + CELL + ">{}</th>", (("right" if i in right else "left", h)
                                                             for i, h in enumerate(headers)))
    body = format_html_join("", "<tr>{}</tr>", (
        (format_html_join("", "<td " + CELL + ">{}</td>", (("right" if i in right else "left", c)
                                                           for i, c in enumerate(row))),)
        for row in rows))
    return format_html('<table class="{}" style="{}"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
                       css_class, TABLE_STYLE, head, body)


def tier_rows(tiers, currency: str | None) -> list[list[str]]:
    rows, low = [], Decimal(0)
    for tier in tiers or []:
        if not isinstance(tier, dict):
            continue
        up_to = tier.get("up_to")
        rows.append([_units(low), _units(up_to), _price(tier.get("unit_amount", 0), currency),
                     _price(tier.get("flat_amount", 0), currency)])
        low = _dec(up_to) if _dec(up_to) is not None else low
    return rows


def charge_properties_table(model: str, properties, currency: str | None) -> SafeString:
    """A charge's properties as a table (see the module docstring)."""
    p = properties if isinstance(properties, dict) else {}
    if model in ("graduated", "volume"):
        how = ("each tier prices its own units" if model == "graduated"
               else "the tier the total reaches prices every unit")
        return format_html("{}<div class=\"help\">{}</div>", html_table(
            ["From (units)", "Up to", "Price per unit", "Flat fee"], tier_rows(p.get("tiers"), currency),
            css_class="config-table tiers", right={0, 1, 2, 3}), how)
    if model == "standard":
        rows = [["Price per unit", _price(p.get("unit_amount"), currency)]]
    elif model == "package":
        rows = [["Package size (units)", _units(p.get("package_size"))],
                ["Price per started package", _price(p.get("amount"), currency)],
                ["Free units", _units(p.get("free_units", 0))]]
    elif model == "percentage":
        rate = _dec(p.get("rate"))
        rows = [["Rate", Formatter(currency="USD", locale=DEFAULT_LOCALE).percent(rate) if rate is not None else "—"],
                ["Fixed fee per event", _price(p.get("fixed_amount", 0), currency)],
                ["Free events", _units(p.get("free_units", 0))],
                ["Minimum per event", _price(p.get("min_per_transaction"), currency)],
                ["Maximum per event", _price(p.get("max_per_transaction"), currency)]]
    else:
        rows = [[str(k), str(v)] for k, v in p.items()]
    return html_table(["Property", "Value"], rows, css_class=f"config-table {model}", right={1})


class PropertiesTextarea(forms.Textarea):
    """The JSON editor of a charge's properties with a table preview of the value it holds (the
    preview shows prices without a currency symbol: the plan's currency is chosen on the same page)."""

    def __init__(self, attrs=None):
        super().__init__(attrs={"rows": 8, "cols": 70, "style": "font-family: monospace", **(attrs or {})})

    def render(self, name, value, attrs=None, renderer=None):
        html = super().render(name, value, attrs, renderer)
        try:
            data = json.loads(value) if isinstance(value, str) else value
        except ValueError:
            return html
        if not isinstance(data, dict) or not data:
            return html
        model = "graduated" if "tiers" in data else ("package" if "package_size" in data else
                                                    "percentage" if "rate" in data else
                                                    "standard" if "unit_amount" in data else "")
        preview = charge_properties_table(model, data, None)
        return mark_safe(f'{html}<div class="properties-preview"><div class="help">Reads as:</div>{preview}</div>')


class DayListField(forms.Field):
    """Days typed as "1, 3, 6, 10" (or a JSON list): whole days 0–365, ascending, no duplicates."""

    widget = forms.TextInput(attrs={"size": 30})

    def prepare_value(self, value):
        if isinstance(value, (list, tuple)):
            return ", ".join(str(v) for v in value)
        return value

    def to_python(self, value):
        if isinstance(value, (list, tuple)):
            items = list(value)
        else:
            text = (value or "").strip().strip("[]")
            items = [t for t in text.replace(";", ",").replace(" ", ",").split(",") if t]
        days = []
        for item in items:
            try:
                day = int(str(item))
            except ValueError:
                raise ValidationError(f"{item!r} is not a whole number of days.") from None
            if not 0 <= day <= 365:
                raise ValidationError(f"{day}: days run from 0 to 365.")
            days.append(day)
        if days != sorted(set(days)):
            raise ValidationError("Days must be ascending, each once (e.g. 1, 3, 6, 10).")
        return days


def days_text(days) -> str:
    return ", ".join(str(d) for d in days or []) or "—"


def dunning_schedule_table(policy) -> SafeString:
    """A dunning policy's schedule, one row per day after the first failure."""
    plan: dict[int, list[str]] = {}
    retries = list(policy.retry_days or [])[: policy.max_retries]
    for n, day in enumerate(retries, start=1):
        plan.setdefault(int(day), []).append(f"retry #{n}")
    for day in policy.email_days or []:
        plan.setdefault(int(day), []).append("reminder e-mail" if int(day) else "e-mail: payment failed")
    plan.setdefault(int(policy.escalate_day), []).append("escalate (action required)")
    plan.setdefault(int(policy.final_day), []).append(f"final: {policy.get_final_action_display()}")
    rows = [[str(day), "; ".join(what)] for day, what in sorted(plan.items())]
    table = html_table(["Day", "What happens"], rows, css_class="config-table dunning-schedule", right={0})
    extra = (f"Retries only inside {policy.retry_window_days} days; card networks cap at "
             f"{policy.network_cap_attempts} attempts in {policy.network_cap_days} days.")
    return format_html("{}<div class=\"help\">{}</div>", table, extra)


def money_display(value, currency: str | None) -> str:
    """An amount per its currency ("$20.00", "¥500"); "—" when empty."""
    if value is None or value == "":
        return "—"
    fmt = _fmt(currency)
    return fmt.money(value) if fmt else str(value)


def percent_display(value) -> str:
    """A rate stored in percent ("8.2500") → "8.25%"."""
    number = _dec(value)
    return "—" if number is None else Formatter(currency="USD", locale=DEFAULT_LOCALE).percent(number)


def money_of(name: str, currency_attr: str, label: str | None = None):
    """An admin read-only column showing `obj.<name>` in the currency at the dotted `currency_attr`
    (e.g. "plan.currency" for a plan version). The same callable works in list_display and fields."""

    def show(obj):
        currency = obj
        for part in currency_attr.split("."):
            currency = getattr(currency, part, None)
        return money_display(getattr(obj, name, None), currency)

    show.__name__ = f"{name}_display"
    show.short_description = label or name.replace("_", " ")
    show.admin_order_field = name
    return show


def percent_of(name: str, label: str | None = None):
    """An admin read-only column showing a rate stored in percent as "8.25%"."""

    def show(obj):
        return percent_display(getattr(obj, name, None))

    show.__name__ = f"{name}_percent"
    show.short_description = label or name.replace("_", " ")
    show.admin_order_field = name
    return show
