"""Cost allocation / showback (DESIGN.md §12, API.md GET /invoices/{id}/allocation/?by=…).

Each usage line (and late-usage line) is split by the values of one event property in proportion
to the units each value used (aggregated by the metric's own rule, read through
`usage.selectors.usage_units_by_property`); events without the property are `unattributed`. A
line's cents are dealt by largest remainder (ties: the larger share first, then the value's text),
so each line's parts sum to the line exactly, and the groups plus `unattributed` sum to the usage
lines exactly.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_DOWN, Decimal

from common.errors import ApplicationError
from common.money import format_money, format_quantity, money_quantum
from common.timeutil import local_date_bounds_utc
from invoicing.models import Invoice, LineKind
from usage.selectors import usage_units_by_property

ZERO = Decimal(0)
_UNATTRIBUTED = None


def split_largest_remainder(amount: Decimal, weights: dict, quantum: Decimal) -> dict:
    """Split `amount` into multiples of `quantum` proportional to `weights` (≥ 0), summing exactly."""
    total_weight = sum(weights.values(), ZERO)
    if not weights:
        return {}
    if total_weight <= 0:
        keys = sorted(weights, key=lambda k: (k is None, str(k)))
        return {k: (amount if i == 0 else ZERO) for i, k in enumerate(keys)}
    units = (amount / quantum).to_integral_value()
    exact = {k: units * w / total_weight for k, w in weights.items()}
    floors = {k: v.to_integral_value(rounding=ROUND_DOWN) for k, v in exact.items()}
    left = int(units - sum(floors.values(), ZERO))
    order = sorted(weights, key=lambda k: (-(exact[k] - floors[k]), -weights[k], k is None, str(k)))
    for k in order[:left]:
        floors[k] += 1
    return {k: floors[k] * quantum for k in weights}


def invoice_allocation(*, invoice: Invoice, by: str) -> dict:
    if not by or len(by) > 200:
        raise ApplicationError("'by' (an event property) is required.", fields={"by": ["required"]})
    tz = invoice.customer.timezone
    quantum = money_quantum(invoice.currency)
    groups: dict = defaultdict(lambda: {"amount": ZERO, "units": ZERO})
    lines_out = []
    for line in invoice.lines.filter(kind__in=(LineKind.USAGE, LineKind.LATE_USAGE)).select_related(
            "billable_metric").order_by("position", "pk"):
        if line.kind == LineKind.LATE_USAGE:
            units = usage_units_by_property(subscription_id=invoice.subscription_id, metric_id=line.billable_metric_id,
                                            start=None, end=None, prop=by, late_invoice_id=invoice.pk)
        elif line.period_start and line.period_end and line.billable_metric_id:
            start, end = local_date_bounds_utc(line.period_start, line.period_end, tz)
            units = usage_units_by_property(subscription_id=invoice.subscription_id, metric_id=line.billable_metric_id,
                                            start=start, end=end, prop=by)
        else:
            units = {}
        if not units:
            units = {_UNATTRIBUTED: line.quantity}
        shares = split_largest_remainder(line.amount, units, quantum)
        for value, amount in shares.items():
            groups[value]["amount"] += amount
            groups[value]["units"] += units[value]
        lines_out.append({"line": line.position, "billable_metric": line.billable_metric.code if line.billable_metric_id else None,
                          "amount": format_money(line.amount, invoice.currency),
                          "groups": [{"value": v, "amount": format_money(a, invoice.currency), "units": format_quantity(units[v])}
                                     for v, a in sorted(shares.items(), key=lambda kv: (kv[0] is None, str(kv[0])))]})
    unattributed = groups.pop(_UNATTRIBUTED, {"amount": ZERO, "units": ZERO})
    return {
        "invoice": str(invoice.pk), "by": by, "currency": invoice.currency,
        "groups": [{"value": v, "amount": format_money(g["amount"], invoice.currency), "units": format_quantity(g["units"])}
                   for v, g in sorted(groups.items(), key=lambda kv: (-kv[1]["amount"], str(kv[0])))],
        "unattributed": format_money(unattributed["amount"], invoice.currency),
        "unattributed_units": format_quantity(unattributed["units"]),
        "lines": lines_out,
    }

