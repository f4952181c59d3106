"""Invoice explanations (DESIGN.md §12, API.md GET /invoices/{id}/explanation/).

Deterministic plain language built only from the invoice (its lines, tier breakdowns, discounts,
taxes) and, for the comparison, the subscription's previous invoice. Every figure in the text is a
figure of one of the two invoices (amounts, quantities, unit prices, tier bounds, dates, prorated
days), or the driver's own amount, which the response also carries.

Drivers of the change since the previous invoice, summing exactly to `total_delta`:
- usage volume per metric: the usage now, rated on the previous invoice's charge, minus the previous
  usage amount (tier effects of more or less volume included);
- price/tier changes per metric: the usage amount now minus that same volume at the previous prices;
- seats: (seats now − seats before) × the previous base price; base price: (price now − before) ×
  seats now; proration: the rest of the base-fee change (partial periods);
- proration lines, minimum-commitment true-ups, late usage and other lines: their change;
- discounts (their change, negated) and taxes (their change);
- anything left (e.g. a total not equal to subtotal − discount + tax) as "other".
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from catalog.rating import needs_event_values, rate_charge
from common.money import format_money, format_price, quantize_money
from invoicing.models import Invoice, InvoiceLine, InvoiceStatus, LineKind

ZERO = Decimal(0)


def _q(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _line_text(line: InvoiceLine, currency: str) -> str:
    money = lambda v: format_money(v, currency)  # noqa: E731
    span = (f" from {line.period_start.isoformat()} until {line.period_end.isoformat()}"
            if line.period_start and line.period_end else "")
    if line.kind == LineKind.SUBSCRIPTION:
        text = f"Base fee{span}: {_q(line.quantity)} seat(s) × {format_price(line.unit_amount or ZERO, currency)}"
        meta = line.metadata or {}
        if meta.get("days") and meta.get("full_period_days") and meta["days"] != meta["full_period_days"]:
            text += f", prorated for {meta['days']} of {meta['full_period_days']} days"
        return f"{text} = {money(line.amount)}."
    if line.kind in (LineKind.USAGE, LineKind.LATE_USAGE):
        name = line.billable_metric.name if line.billable_metric_id else "usage"
        late = "Late usage of " if line.kind == LineKind.LATE_USAGE else ""
        text = f"{late}{name}{span}: {_q(line.quantity)} units"
        if line.tiers:
            parts = []
            for t in line.tiers:
                bound = f"{t['from']} to {t['to']}" if t.get("to") is not None else f"{t['from']} and above"
                part = f"{t['units']} units in tier {bound} at {t['unit_amount']}"
                if Decimal(t.get("flat_amount") or 0):
                    part += f" plus {t['flat_amount']} flat"
                parts.append(f"{part} = {t['amount']}")
            text += " (" + "; ".join(parts) + ")"
        elif line.unit_amount is not None:
            text += f" × {format_price(line.unit_amount, currency)}"
        return f"{text} = {money(line.amount)}."
    if line.kind == LineKind.MINIMUM_COMMITMENT:
        meta = line.metadata or {}
        if meta.get("minimum") and meta.get("subtotal"):
            return (f"Minimum commitment{span}: fees and usage came to {money(Decimal(meta['subtotal']))} against a "
                    f"{money(Decimal(meta['minimum']))} minimum, so {money(line.amount)} is added.")
        return f"Minimum commitment true-up{span}: {money(line.amount)}."
    return f"{line.get_kind_display().capitalize()}{span}: {line.description} = {money(line.amount)}."


def _previous(invoice: Invoice) -> Invoice | None:
    if invoice.subscription_id is None:
        return None
    return (Invoice.objects.filter(subscription_id=invoice.subscription_id, billing_date__lte=invoice.billing_date)
            .exclude(pk=invoice.pk).exclude(status=InvoiceStatus.VOID)
            .filter(created_at__lt=invoice.created_at).order_by("-billing_date", "-created_at").first())


def _lines(invoice: Invoice) -> list[InvoiceLine]:
    return list(invoice.lines.select_related("billable_metric", "charge").order_by("position", "pk"))


def _sum(lines, kinds) -> Decimal:
    return sum((ln.amount for ln in lines if ln.kind in kinds), ZERO)


def _drivers(invoice: Invoice, now_lines, prev: Invoice, prev_lines) -> list[dict]:
    cur = invoice.currency
    money = lambda v: format_money(v, cur)  # noqa: E731
    drivers: list[dict] = []

    def add(text: str, amount: Decimal) -> None:
        amount = quantize_money(amount, cur)
        if amount:
            drivers.append({"text": text, "amount": money(amount)})

    # usage per metric
    by_metric: dict = defaultdict(lambda: {"now": [], "prev": []})
    for ln in now_lines:
        if ln.kind == LineKind.USAGE:
            by_metric[ln.billable_metric_id]["now"].append(ln)
    for ln in prev_lines:
        if ln.kind == LineKind.USAGE:
            by_metric[ln.billable_metric_id]["prev"].append(ln)
    for metric_id, pair in by_metric.items():
        now_amt, prev_amt = _sum(pair["now"], (LineKind.USAGE,)), _sum(pair["prev"], (LineKind.USAGE,))
        q_now = sum((ln.quantity for ln in pair["now"]), ZERO)
        q_prev = sum((ln.quantity for ln in pair["prev"]), ZERO)
        line = (pair["now"] or pair["prev"])[0]
        name = line.billable_metric.name if line.billable_metric_id else "usage"
        prev_charge = pair["prev"][0].charge if len(pair["prev"]) == 1 and pair["prev"][0].charge_id else None
        at_old_prices = None
        if prev_charge is not None and not needs_event_values(model=prev_charge.model, properties=prev_charge.properties):
            count = sum(int((ln.metadata or {}).get("event_count", 0)) for ln in pair["now"])
            at_old_prices = rate_charge(charge=prev_charge, quantity=q_now, currency=cur, event_count=count).amount
        volume = (at_old_prices if at_old_prices is not None else now_amt) - prev_amt
        add(f"{name}: {_q(q_now)} units against {_q(q_prev)} units on the previous invoice "
            f"({money(prev_amt)} then, {money(now_amt)} now)", volume)
        if at_old_prices is not None:
            add(f"{name}: price or tier changes on {_q(q_now)} units ({money(now_amt)} now against "
                f"{money(at_old_prices)} at the previous prices)", now_amt - at_old_prices)

    # base fee: seats, price, proration
    subs_now = [ln for ln in now_lines if ln.kind == LineKind.SUBSCRIPTION]
    subs_prev = [ln for ln in prev_lines if ln.kind == LineKind.SUBSCRIPTION]
    base_delta = _sum(subs_now, (LineKind.SUBSCRIPTION,)) - _sum(subs_prev, (LineKind.SUBSCRIPTION,))
    if subs_now and subs_prev:
        seats_now, seats_prev = max(ln.quantity for ln in subs_now), max(ln.quantity for ln in subs_prev)
        price_now, price_prev = subs_now[0].unit_amount or ZERO, subs_prev[0].unit_amount or ZERO
        seats = quantize_money((seats_now - seats_prev) * price_prev, cur)
        price = quantize_money((price_now - price_prev) * seats_now, cur)
        add(f"Seats: {_q(seats_now)} now against {_q(seats_prev)} before, at {format_price(price_prev, cur)} each", seats)
        add(f"Base price: {format_price(price_now, cur)} now against {format_price(price_prev, cur)} before, "
            f"for {_q(seats_now)} seat(s)", price)
        add("Proration of the base fee (partial periods)", base_delta - seats - price)
    else:
        add("Base fee", base_delta)
    for kind, label in ((LineKind.PRORATION, "Proration for plan or seat changes"),
                        (LineKind.MINIMUM_COMMITMENT, "Minimum commitment true-up"),
                        (LineKind.LATE_USAGE, "Late usage"), (LineKind.CREDIT, "Credits"),
                        (LineKind.ADJUSTMENT, "Adjustments")):
        add(label, _sum(now_lines, (kind,)) - _sum(prev_lines, (kind,)))
    add(f"Discounts: {money(invoice.discount)} now against {money(prev.discount)} before", -(invoice.discount - prev.discount))
    add(f"Taxes: {money(invoice.tax)} now against {money(prev.tax)} before", invoice.tax - prev.tax)
    delta = invoice.total - prev.total
    explained = sum((Decimal(d["amount"]) for d in drivers), ZERO)
    add("Other", delta - explained)
    return drivers


def invoice_explanation(*, invoice: Invoice) -> dict:
    cur = invoice.currency
    money = lambda v: format_money(v, cur)  # noqa: E731
    lines = _lines(invoice)
    what = f"Invoice {invoice.number}" if invoice.number else "This draft invoice"
    span = (f" for {invoice.period_start.isoformat()} until {invoice.period_end.isoformat()}"
            if invoice.period_start and invoice.period_end else "")
    summary = f"{what}{span}: subtotal {money(invoice.subtotal)} {cur}"
    if invoice.discount:
        summary += f", discounts {money(invoice.discount)}"
    if invoice.tax:
        summary += f", tax {money(invoice.tax)}"
    summary += f", total {money(invoice.total)} {cur}."
    usage = [ln for ln in lines if ln.kind in (LineKind.USAGE, LineKind.LATE_USAGE)]
    if usage:
        summary += f" Usage accounts for {money(_sum(usage, (LineKind.USAGE, LineKind.LATE_USAGE)))}."
    for d in invoice.discount_lines or []:
        summary += f" Discount {d.get('code') or d.get('description', '')}: {d['amount']}."
    for t in invoice.tax_lines or []:
        summary += f" {t['name']} at {t['rate']} on {t['taxable_amount']}: {t['amount']}."
    body = {"invoice": str(invoice.pk), "summary": summary,
            "lines": [{"line": ln.position, "kind": ln.kind, "text": _line_text(ln, cur)} for ln in lines],
            "comparison": {"previous_invoice": None, "previous_total": None, "total_delta": None, "drivers": []}}
    prev = _previous(invoice)
    if prev is not None:
        drivers = _drivers(invoice, lines, prev, _lines(prev))
        body["comparison"] = {"previous_invoice": str(prev.pk), "previous_total": money(prev.total),
                              "total_delta": money(invoice.total - prev.total), "drivers": drivers}
    return body
