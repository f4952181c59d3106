"""Finance analytics reads (DESIGN.md §11, API.md "Analytics"): the monthly MRR bridge, the month's
summary, usage revenue by service month, 12-month cohorts and AR aging.

Every figure is a Decimal in the currency asked for (never converted, never float). The MRR figures
come from the movement ledger (`analytics.mrr`): a month's MRR is the sum of every movement up to
it, so `mrr = previous + new + reactivation + expansion − contraction − churn` holds exactly.
Rates are decimal fractions rounded half up to 4 places (`rate_str` prints them, e.g. "0.05");
a rate over a zero denominator is None.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd
from django.db.models import Count, Sum
from django.utils import timezone

from analytics.models import MOVEMENT_SIGN, MovementKind, MrrMovement
from analytics.mrr import add_months, month_start
from common.money import quantize_money
from invoicing.models import Invoice, InvoiceLine

ZERO = Decimal(0)
KINDS = [k.value for k in MovementKind]
RATE_QUANTUM = Decimal("0.0001")
USAGE_LINE_KINDS = ("usage", "late_usage")
BILLED_STATUSES = ("finalized", "paid", "uncollectible")
AGING_BUCKETS = ("current", "1_30", "31_60", "61_90", "over_90")


def rate(numerator: Decimal, denominator: Decimal) -> Decimal | None:
    if not denominator:
        return None
    return (numerator / denominator).quantize(RATE_QUANTUM, rounding=ROUND_HALF_UP)


def rate_str(value: Decimal | None) -> str | None:
    """"0.0500" → "0.05", "1.0000" → "1.00", "0.4412" stays: at least two places, no trailing zeros beyond."""
    if value is None:
        return None
    text = f"{value.normalize():f}"
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def _sum(values) -> Decimal:
    return sum(values, ZERO)


# --- the MRR bridge ---------------------------------------------------------------------------

@dataclass(frozen=True)
class BridgeMonth:
    month: date
    mrr_start: Decimal
    new: Decimal
    expansion: Decimal
    contraction: Decimal
    churn: Decimal
    reactivation: Decimal
    mrr: Decimal
    customers_start: int
    customers: int
    churned_customers: int

    def as_dict(self) -> dict:
        return {"month": f"{self.month:%Y-%m}", "mrr": self.mrr, "new": self.new, "expansion": self.expansion,
                "contraction": self.contraction, "churn": self.churn, "reactivation": self.reactivation,
                "customers": self.customers}


def mrr_bridge(*, currency: str, start: date, end: date) -> list[BridgeMonth]:
    """One row per month in [start, end] (months named by their first day), from the ledger summed
    per month and kind in SQL (a few hundred rows whatever the number of subscriptions), then
    accumulated: MRR and paying customers at a month's end are running sums of the movements."""
    rows = (MrrMovement.objects.filter(currency=currency, month__lte=end).values("month", "kind")
            .annotate(total=Sum("amount"), n=Count("id")).order_by())
    frame = pd.DataFrame.from_records(list(rows), columns=["month", "kind", "total", "n"])
    if frame.empty:
        frame = pd.DataFrame({"month": [start], "kind": ["new"], "total": [ZERO], "n": [0]})
    amounts = frame.pivot_table(index="month", columns="kind", values="total", aggfunc="first").reindex(columns=KINDS)
    counts = frame.pivot_table(index="month", columns="kind", values="n", aggfunc="sum").reindex(columns=KINDS)
    amounts = amounts.astype(object).where(amounts.notna(), ZERO)
    counts = counts.fillna(0).astype(int)
    mrr, customers = ZERO, 0
    months_before = [m for m in amounts.index if m < start]
    for m in months_before:
        mrr += _sum(amounts.at[m, k] * MOVEMENT_SIGN[k] for k in KINDS)
        customers += int(counts.at[m, "new"] + counts.at[m, "reactivation"] - counts.at[m, "churn"])
    out = []
    month = start
    while month <= end:
        if month in amounts.index:
            moved = {k: amounts.at[month, k] for k in KINDS}
            gained = int(counts.at[month, "new"] + counts.at[month, "reactivation"])
            lost = int(counts.at[month, "churn"])
        else:
            moved, gained, lost = {k: ZERO for k in KINDS}, 0, 0
        closing = mrr + _sum(moved[k] * MOVEMENT_SIGN[k] for k in KINDS)
        out.append(BridgeMonth(month=month, mrr_start=mrr, mrr=closing, customers_start=customers,
                               customers=customers + gained - lost, churned_customers=lost,
                               **{k: quantize_money(moved[k], currency) for k in KINDS}))
        mrr, customers = closing, customers + gained - lost
        month = add_months(month, 1)
    return [BridgeMonth(**{**b.__dict__, "mrr": quantize_money(b.mrr, currency),
                           "mrr_start": quantize_money(b.mrr_start, currency)}) for b in out]


# --- summary ----------------------------------------------------------------------------------

def analytics_summary(*, currency: str, month: date) -> dict:
    """The month's figures, month to month (API.md): ARR = 12 × MRR; ARPA = MRR / paying customers;
    logo churn = churned customers / customers at the month's start; revenue churn = (contraction +
    churn) / start MRR; NRR = (start + expansion − contraction − churn) / start; GRR = (start −
    contraction − churn) / start; LTV = ARPA / revenue churn rate (None without churn); and the
    trailing 12-month NRR/GRR (`trailing_retention`)."""
    b = mrr_bridge(currency=currency, start=month, end=month)[0]
    lost = b.contraction + b.churn
    revenue_churn = rate(lost, b.mrr_start)
    arpa = quantize_money(b.mrr / b.customers, currency) if b.customers else None
    ltv = quantize_money(arpa / revenue_churn, currency) if arpa is not None and revenue_churn else None
    usage = usage_revenue(currency=currency, start=month, end=month)[0]
    return {
        "month": f"{month:%Y-%m}", "currency": currency, "mrr": b.mrr, "arr": b.mrr * 12, "customers": b.customers,
        "arpa": arpa, "logo_churn_rate": rate(Decimal(b.churned_customers), Decimal(b.customers_start)),
        "revenue_churn_rate": revenue_churn,
        "nrr": rate(b.mrr_start + b.expansion - lost, b.mrr_start), "grr": rate(b.mrr_start - lost, b.mrr_start),
        "usage_revenue": usage["usage_revenue"], "ltv": ltv, **trailing_retention(currency=currency, month=month),
        "mrr_start": b.mrr_start, "new": b.new, "expansion": b.expansion, "contraction": b.contraction,
        "churn": b.churn, "reactivation": b.reactivation, "customers_start": b.customers_start,
        "churned_customers": b.churned_customers,
    }


# --- usage revenue ----------------------------------------------------------------------------

def usage_revenue_frame(*, currency: str, end: date | None = None, by_customer: bool = False) -> pd.DataFrame:
    """Invoiced usage (usage and late-usage lines of finalized, paid or uncollectible invoices; not
    drafts, not void) by service month (the month of the line's period start), before discounts."""
    qs = InvoiceLine.objects.filter(invoice__currency=currency, invoice__status__in=BILLED_STATUSES,
                                    kind__in=USAGE_LINE_KINDS, period_start__isnull=False)
    if end is not None:
        qs = qs.filter(period_start__lt=add_months(end, 1))
    keys = ["invoice__customer_id", "period_start"] if by_customer else ["period_start"]
    rows = list(qs.values(*keys).annotate(total=Sum("amount")).order_by())
    frame = pd.DataFrame.from_records(rows, columns=[*keys, "total"]).rename(columns={"invoice__customer_id": "customer_id"})
    group = ["customer_id", "month"] if by_customer else ["month"]
    if frame.empty:
        return pd.DataFrame(columns=[*group, "total"])
    frame["month"] = frame["period_start"].map(month_start)
    return frame.groupby(group, as_index=False).agg(total=("total", _sum))


def usage_revenue(*, currency: str, start: date, end: date) -> list[dict]:
    """Per month in [start, end]: usage revenue and its trailing-3-month run-rate (the average of the
    month and the two before it, quantized)."""
    frame = usage_revenue_frame(currency=currency, end=end)
    by_month = dict(zip(frame["month"], frame["total"]))
    out = []
    month = start
    while month <= end:
        trailing = [by_month.get(add_months(month, -i), ZERO) for i in range(3)]
        out.append({"month": f"{month:%Y-%m}", "usage_revenue": quantize_money(by_month.get(month, ZERO), currency),
                    "run_rate_3m": quantize_money(_sum(trailing) / 3, currency)})
        month = add_months(month, 1)
    return out


# --- cohorts ----------------------------------------------------------------------------------

def customer_mrr_matrix(*, currency: str, end: date) -> pd.DataFrame:
    """Customers × month ends (first days) → MRR, forward-filled from the ledger's `mrr_after`."""
    rows = MrrMovement.objects.filter(currency=currency, month__lte=end).values_list("customer_id", "month", "mrr_after")
    frame = pd.DataFrame.from_records(list(rows), columns=["customer_id", "month", "mrr"])
    if frame.empty:
        return pd.DataFrame()
    first = frame["month"].min()
    months = []
    m = first
    while m <= end:
        months.append(m)
        m = add_months(m, 1)
    matrix = frame.pivot(index="customer_id", columns="month", values="mrr").reindex(columns=months)
    return matrix.ffill(axis=1).astype(object).where(lambda x: x.notna(), ZERO)


def cohorts(*, currency: str, start: date, months: int = 12) -> list[dict]:
    """12-month cohorts: the customers whose first MRR (a `new` movement) falls in each of the
    `months` months from `start`; for offsets 0..12 their MRR at that month's end, NRR (MRR / the
    cohort's MRR at the end of its first month) and GRR (each customer capped at its starting MRR,
    so expansion does not count). Offsets after the current month (or the ledger's last month, if
    later: scheduled changes) are left out."""
    last = add_months(start, months - 1 + 12)
    firsts = dict(MrrMovement.objects.filter(currency=currency, kind=MovementKind.NEW,
                                             month__gte=start, month__lt=add_months(start, months))
                  .values_list("customer_id", "month"))
    matrix = customer_mrr_matrix(currency=currency, end=last)
    latest = MrrMovement.objects.filter(currency=currency).order_by("-month").values_list("month", flat=True).first()
    horizon = max(latest, month_start(timezone.now().date())) if latest else None  # MRR holds after the last movement
    out = []
    for i in range(months):
        cohort_month = add_months(start, i)
        members = [c for c, m in firsts.items() if m == cohort_month]
        row = {"cohort": f"{cohort_month:%Y-%m}", "customers": len(members), "mrr": ZERO, "months": []}
        if members:
            base = matrix.loc[members, cohort_month]
            start_mrr = _sum(base)
            row["mrr"] = quantize_money(start_mrr, currency)
            for offset in range(13):
                month = add_months(cohort_month, offset)
                if horizon is None or month > max(horizon, cohort_month) or month not in matrix.columns:
                    break
                now = matrix.loc[members, month]
                capped = _sum(min(a, b) for a, b in zip(now, base))
                row["months"].append({"offset": offset, "month": f"{month:%Y-%m}",
                                      "mrr": quantize_money(_sum(now), currency),
                                      "customers": int(sum(1 for v in now if v > 0)),
                                      "nrr": rate(_sum(now), start_mrr), "grr": rate(capped, start_mrr)})
        out.append(row)
    return out


def trailing_retention(*, currency: str, month: date, months: int = 12) -> dict:
    """`nrr_12m`, `grr_12m`: the customers paying at the end of the month `months` before `month`,
    their MRR now over their MRR then (GRR caps each customer at its MRR then). None without
    customers then."""
    then = add_months(month, -months)
    matrix = customer_mrr_matrix(currency=currency, end=month)
    if matrix.empty or then not in matrix.columns:
        return {"nrr_12m": None, "grr_12m": None}
    base = matrix[then]
    members = base[base.map(lambda v: v > 0)].index
    start = _sum(base[members])
    now = matrix.loc[members, month]
    return {"nrr_12m": rate(_sum(now), start), "grr_12m": rate(_sum(min(a, b) for a, b in zip(now, base[members])), start)}


# --- AR aging ---------------------------------------------------------------------------------

def _bucket(days_past_due: int) -> str:
    if days_past_due <= 0:
        return "current"
    if days_past_due <= 30:
        return "1_30"
    if days_past_due <= 60:
        return "31_60"
    if days_past_due <= 90:
        return "61_90"
    return "over_90"


def ar_aging(*, currency: str, as_of: date) -> dict:
    """Open receivables on `as_of`: finalized invoices issued on or before it with an amount due
    (already net of recorded payments and credit notes), bucketed by days past the due date (the
    issue date when there is none). Void and draft invoices are excluded; uncollectible ones are
    totalled apart. The buckets sum to the invoices' amount due to the cent."""
    base = Invoice.objects.filter(currency=currency, issue_date__lte=as_of, amount_due__gt=0)
    open_rows = base.filter(status="finalized").values_list("customer__external_id", "due_date", "issue_date", "amount_due")
    buckets = {b: ZERO for b in AGING_BUCKETS}
    customers: dict[str, dict] = {}
    for external_id, due, issued, amount in open_rows:
        bucket = _bucket((as_of - (due or issued)).days)
        buckets[bucket] += amount
        entry = customers.setdefault(external_id, {"customer": external_id, **{b: ZERO for b in AGING_BUCKETS}})
        entry[bucket] += amount
    uncollectible = base.filter(status="uncollectible").aggregate(total=Sum("amount_due"))["total"] or ZERO
    q = lambda v: quantize_money(v, currency)  # noqa: E731
    rows = [{"customer": c["customer"], **{b: q(c[b]) for b in AGING_BUCKETS}, "total": q(_sum(c[b] for b in AGING_BUCKETS))}
            for c in sorted(customers.values(), key=lambda c: c["customer"])]
    return {"as_of": as_of, "currency": currency, "buckets": {b: q(v) for b, v in buckets.items()},
            "total": q(_sum(buckets.values())), "uncollectible": q(uncollectible), "customers": rows}
