"""Reports, computed from the journal only (DESIGN.md §8).

- trial balance: per account, debits, credits and balance (debit − credit) through a date; sums to 0.
- rollforward (deferred revenue): closing = opening + billed − recognized − credited, where billed
  is what invoice entries credited to deferred revenue, recognized what recognition entries took
  out of it, credited what credit notes and voids took out of it (net).
- waterfall: per billing month, what was billed into deferred revenue and how it is recognized
  month by month, with what remains deferred.
- reconciliation (billed vs collected vs recognized) for a month, every difference by kind:
    billed − collected = outstanding + credited + written_off + refunded − prior_period_collected
    billed − recognized = deferred + unbilled + credited − prior_period_recognized + tax
  (`tax`: tax is billed and collected, never revenue; see docs/decisions.md).
- forecast: revenue still to be recognized (schedule entries not yet recognized), by month.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal

from django.db.models import Sum

from common.money import format_money
from revrec.models import Account, JournalEntry, JournalLine, ScheduleEntry
from revrec.schedules import month_end, month_start, next_month

ZERO = Decimal(0)
ACCOUNTS = [a.value for a in Account]


def _lines(currency: str):
    return JournalLine.objects.filter(currency=currency)


def _money(amount, currency):
    return format_money(amount or ZERO, currency)


def trial_balance(*, currency: str, through: date, since: date | None = None) -> dict:
    """Per account: debit, credit and balance (debit − credit) of entries dated ≤ `through` (and ≥ `since`)."""
    rows = _lines(currency).filter(entry__date__lte=through)
    if since is not None:
        rows = rows.filter(entry__date__gte=since)
    sums = {r["account"]: r for r in rows.values("account").annotate(debit=Sum("debit"), credit=Sum("credit"))}
    accounts, total_debit, total_credit = [], ZERO, ZERO
    for account in ACCOUNTS:
        debit = sums.get(account, {}).get("debit") or ZERO
        credit = sums.get(account, {}).get("credit") or ZERO
        total_debit += debit
        total_credit += credit
        accounts.append({"account": account, "debit": _money(debit, currency), "credit": _money(credit, currency),
                         "balance": _money(debit - credit, currency)})
    return {"currency": currency, "through": through.isoformat(), "since": since.isoformat() if since else None,
            "accounts": accounts, "total_debit": _money(total_debit, currency),
            "total_credit": _money(total_credit, currency), "total": _money(total_debit - total_credit, currency)}


def _deferred_movements(currency: str, start: date, end: date) -> dict:
    """Movements of deferred revenue dated in [start, end], by source type (credit − debit)."""
    out: dict = defaultdict(lambda: ZERO)
    for source, debit, credit in _lines(currency).filter(
            account=Account.DEFERRED_REVENUE, entry__date__gte=start, entry__date__lte=end) \
            .values_list("entry__source_type").annotate(d=Sum("debit"), c=Sum("credit")):
        out[source] += (credit or ZERO) - (debit or ZERO)
    return out


def _deferred_balance(currency: str, before: date) -> Decimal:
    agg = _lines(currency).filter(account=Account.DEFERRED_REVENUE, entry__date__lt=before) \
        .aggregate(d=Sum("debit"), c=Sum("credit"))
    return (agg["c"] or ZERO) - (agg["d"] or ZERO)


def rollforward(*, month: date, currency: str) -> dict:
    start, end = month_start(month), month_end(month)
    opening = _deferred_balance(currency, start)
    moves = _deferred_movements(currency, start, end)
    billed = moves.pop("invoice", ZERO)
    recognized = -moves.pop("recognition", ZERO)
    credited = -sum(moves.values(), ZERO)  # credit notes (and their voids), invoice voids
    closing = _deferred_balance(currency, next_month(start))
    assert closing == opening + billed - recognized - credited
    return {"month": f"{start:%Y-%m}", "currency": currency, "opening_deferred": _money(opening, currency),
            "billed": _money(billed, currency), "recognized": _money(recognized, currency),
            "credited": _money(credited, currency), "closing_deferred": _money(closing, currency)}


def waterfall(*, start: date, months: int, currency: str) -> dict:
    """Rows: each billing month of the window, what it billed into deferred revenue and how much of
    that was recognized in each month of the window; `remaining` = still deferred at the window's end."""
    first = month_start(start)
    window = [first]
    for _ in range(months - 1):
        window.append(next_month(window[-1]))
    last_day = month_end(window[-1])
    billed_month: dict = {}
    for invoice_id, day in JournalEntry.objects.filter(source_type="invoice", kind="finalized", currency=currency,
                                                       date__gte=first, date__lte=last_day).values_list("invoice_id", "date"):
        billed_month[invoice_id] = month_start(day)
    rows = {m: {"billed": ZERO, "recognized": defaultdict(lambda: ZERO), "credited": ZERO} for m in window}
    for invoice_id, source, day, debit, credit in _lines(currency).filter(
            account=Account.DEFERRED_REVENUE, invoice_id__in=list(billed_month), entry__date__lte=last_day) \
            .values_list("invoice_id", "entry__source_type", "entry__date", "debit", "credit"):
        row = rows[billed_month[invoice_id]]
        if source == "invoice":
            row["billed"] += credit - debit
        elif source == "recognition":
            row["recognized"][month_start(day)] += debit - credit
        else:
            row["credited"] += debit - credit
    out = []
    for m in window:
        row = rows[m]
        recognized = sum(row["recognized"].values(), ZERO)
        out.append({"billed_month": f"{m:%Y-%m}", "billed": _money(row["billed"], currency),
                    "recognized": [{"month": f"{n:%Y-%m}", "amount": _money(row["recognized"].get(n, ZERO), currency)}
                                   for n in window if n >= m],
                    "credited": _money(row["credited"], currency),
                    "remaining": _money(row["billed"] - recognized - row["credited"], currency)})
    deferred = [{"month": f"{m:%Y-%m}", "closing_deferred": _money(_deferred_balance(currency, next_month(m)), currency)}
                for m in window]
    return {"currency": currency, "from": f"{first:%Y-%m}", "months": months, "rows": out, "deferred_balance": deferred}


def reconciliation(*, month: date, currency: str) -> dict:
    start, end = month_start(month), month_end(month)
    billed_in_month = set(JournalEntry.objects.filter(source_type="invoice", kind="finalized", currency=currency,
                                                      date__gte=start, date__lte=end).values_list("invoice_id", flat=True))
    lines = list(_lines(currency).filter(entry__date__gte=start, entry__date__lte=end)
                 .values_list("account", "entry__source_type", "entry__kind", "invoice_id", "debit", "credit"))
    billed = collected = recognized = ZERO
    outstanding = credited = written_off = refunded = prior_collected = ZERO
    tax = deferred = unbilled = rev_credited = prior_recognized = ZERO
    for account, source, kind, invoice_id, debit, credit in lines:
        signed = debit - credit
        this_month = invoice_id in billed_in_month
        if account == Account.ACCOUNTS_RECEIVABLE:
            if source == "invoice" and kind == "finalized":
                billed += signed
                outstanding += signed
            elif this_month and source in ("payment", "invoice", "credit_note", "void", "uncollectible"):
                outstanding += signed  # what left AR of this month's invoices …
                if source in ("invoice", "credit_note", "void"):
                    credited -= signed  # … by credits, credit notes and voids,
                elif source == "uncollectible":
                    written_off -= signed  # … written off (payments are collected)
        elif account == Account.CASH:
            collected += signed
            if source == "payment" and kind == "reversed":
                if not this_month:  # a dispute reopening an earlier month's invoice
                    prior_collected += signed  # (this month's: its AR line is outstanding again)
            elif signed < 0:
                refunded -= signed
            elif not (this_month and source == "payment"):
                prior_collected += signed
        elif account == Account.REVENUE:
            recognized -= signed
            if source in ("credit_note", "void"):
                rev_credited += signed
        elif account == Account.TAX_PAYABLE and source == "invoice":
            tax -= signed
        elif account == Account.DEFERRED_REVENUE:
            if source == "invoice":
                deferred -= signed
            elif source == "recognition":
                if this_month:
                    deferred -= signed
                else:
                    prior_recognized += signed
        elif account == Account.UNBILLED_RECEIVABLE and source in ("invoice", "recognition"):
            unbilled -= signed
    # Credit notes and voids of earlier invoices move neither billed nor collected; revenue
    # recognized straight at invoice (point in time) is both billed and recognized.
    to_collect = [("outstanding", outstanding), ("credited", credited), ("written_off", written_off),
                  ("refunded", refunded), ("prior_period_collected", -prior_collected)]
    to_recognize = [("deferred", deferred), ("unbilled", unbilled), ("credited", rev_credited),
                    ("prior_period_recognized", -prior_recognized), ("tax", tax)]
    assert sum((a for _, a in to_collect), ZERO) == billed - collected, (to_collect, billed, collected)
    assert sum((a for _, a in to_recognize), ZERO) == billed - recognized, (to_recognize, billed, recognized)
    return {"month": f"{start:%Y-%m}", "currency": currency, "billed": _money(billed, currency),
            "collected": _money(collected, currency), "recognized": _money(recognized, currency),
            "billed_vs_collected_difference": _money(billed - collected, currency),
            "billed_vs_recognized_difference": _money(billed - recognized, currency),
            "billed_vs_collected": [{"kind": k, "amount": _money(a, currency)} for k, a in to_collect],
            "billed_vs_recognized": [{"kind": k, "amount": _money(a, currency)} for k, a in to_recognize]}


def forecast(*, currency: str, start: date | None = None, months: int = 12) -> dict:
    """Contracted revenue not yet recognized, by schedule month."""
    rows = ScheduleEntry.objects.filter(obligation__currency=currency, obligation__voided=False,
                                        posted_entry__isnull=True)
    if start is not None:
        rows = rows.filter(month__gte=month_start(start))
    by_month = {m: a for m, a in rows.values_list("month").annotate(a=Sum("amount")).order_by("month")}
    ordered = sorted(by_month.items())[:months] if months else sorted(by_month.items())
    return {"currency": currency, "months": [{"month": f"{m:%Y-%m}", "amount": _money(a, currency)} for m, a in ordered],
            "total": _money(sum((a for _, a in ordered), ZERO), currency)}


def journal_entries(*, start: date | None, end: date | None, currency: str | None):
    """Entries dated in [start, end) (half-open like every period of the API), with their lines."""
    rows = JournalEntry.objects.prefetch_related("lines").order_by("date", "pk")
    if start is not None:
        rows = rows.filter(date__gte=start)
    if end is not None:
        rows = rows.filter(date__lt=end)
    if currency:
        rows = rows.filter(currency=currency)
    return rows
