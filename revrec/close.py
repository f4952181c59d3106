"""Month close (DESIGN.md §8; `python manage.py revrec_close --month YYYY-MM`, beat daily).

1. Sync: every source document not posted yet is posted (`revrec.postings.revrec_sync`).
2. Recognition: every schedule entry of this month or earlier that is still open, of an invoice
   that is posted, is recognized, one journal entry per (invoice, schedule month, kind):
   - `recognition`: Dr deferred revenue / Cr revenue (billed ahead),
   - `accrual`: Dr unbilled receivable / Cr revenue (earned before it was billed: usage consumed
     in the month and invoiced after it; its invoice entry credited unbilled receivable).
   Dated the last day of the schedule month, or, when that month is closed already (a late item),
   the last day of the month being closed, with a note.
   Before that, usage consumed in the month and not invoiced yet is accrued
   (`revrec.accruals.accrue_usage`: Dr unbilled receivable / Cr revenue, kind `usage_accrual`).
3. The month is marked closed: nothing more posts on a date inside it (later items move to the
   first open day after it).

Rerunnable: a closed month is not closed again (its rerun only syncs); schedule entries carry the
entry that recognized them and entries are unique per source and kind, so nothing posts twice. The
whole close runs under the journal's advisory lock, so two closes (or a close and a sync) never
interleave."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from common.errors import ApplicationError
from revrec.accruals import accrue_usage
from revrec.models import Account, AccountingPeriod, EntryTreatment, JournalEntry, ScheduleEntry
from revrec.postings import Draft, analyze_after_bulk, closed_months, journal_lock, revrec_sync, write_entries
from revrec.schedules import month_end, month_start, next_month

ZERO = Decimal(0)
CHUNK = 2000


def parse_month(text: str) -> date:
    try:
        year, month = str(text).split("-")
        if len(year) != 4 or len(month) != 2:
            raise ValueError
        return date(int(year), int(month), 1)
    except (ValueError, TypeError):
        raise ValueError(f"{text!r} is not a month (YYYY-MM)") from None


def _recognize_chunk(rows: list[ScheduleEntry], month: date, closed: set) -> int:
    groups: dict = defaultdict(list)
    for row in rows:
        kind = "accrual" if row.treatment == EntryTreatment.ACCRUED else "recognition"
        groups[(row.obligation.invoice_id, row.month, kind)].append(row)
    drafts, members = [], []
    for (invoice_id, entry_month, kind), group in groups.items():
        obligation = group[0].obligation
        late = entry_month in closed
        day = month_end(month) if late else month_end(entry_month)
        note = f"{entry_month:%Y-%m} was closed; recognized in {month:%Y-%m}" if late else ""
        memo = (f"{'Usage accrued' if kind == 'accrual' else 'Revenue recognized'} {entry_month:%Y-%m}, "
                f"invoice {obligation.invoice.number}")
        draft = Draft(date=day, currency=obligation.currency, memo=memo, source_type="recognition",
                      source_id=f"{invoice_id}:{entry_month:%Y-%m}", kind=kind, document_date=month_end(entry_month),
                      invoice_id=invoice_id, customer_id=obligation.customer_id, note=note)
        source = Account.UNBILLED_RECEIVABLE if kind == "accrual" else Account.DEFERRED_REVENUE
        for row in group:
            draft.add(source, row.amount, obligation=row.obligation_id)
            draft.add(Account.REVENUE, -row.amount, obligation=row.obligation_id)
        drafts.append(draft)
        members.append(group)
    # An already-posted (invoice, month, kind) key means a rerun found rows a crash left unmarked:
    # mark them with the existing entry rather than posting twice.
    existing = {(e.source_id, e.kind): e for e in JournalEntry.objects.filter(
        source_type="recognition", source_id__in=[d.source_id for d in drafts])}
    fresh = [(d, g) for d, g in zip(drafts, members) if (d.source_id, d.kind) not in existing]
    entries = write_entries([d for d, _ in fresh])
    by_key = {**existing, **{(e.source_id, e.kind): e for e in entries}}
    row_ids, entry_ids = [], []
    for draft, group in zip(drafts, members):
        entry = by_key.get((draft.source_id, draft.kind))
        for row in group:
            row_ids.append(row.pk)
            entry_ids.append(entry.pk)
    with connection.cursor() as cursor:  # one UPDATE for the chunk (schedule rows are marked, not edited)
        cursor.execute("UPDATE revrec_scheduleentry AS s SET posted_entry_id = u.entry_id "
                       "FROM unnest(%s::bigint[], %s::bigint[]) AS u(id, entry_id) "
                       "WHERE s.id = u.id AND s.posted_entry_id IS NULL", [row_ids, entry_ids])
    return len(entries)


def revrec_close(*, month: date, actor: str = "system") -> dict:
    """Post `month`'s recognition and close it. Returns a summary (also stored on the period)."""
    month = month_start(month)
    if month >= month_start(timezone.localdate()):
        raise ApplicationError(f"{month:%Y-%m} has not ended yet; only a past month can be closed.",
                               code="month_not_ended", fields={"month": ["not ended"]})
    synced = revrec_sync()
    if AccountingPeriod.objects.filter(month=month).exists():
        return {"month": f"{month:%Y-%m}", "already_closed": True, "synced": synced.as_dict(), "entries": 0}
    # Usage consumed in the month and not invoiced yet: accrued first (revrec.accruals).
    with transaction.atomic():
        journal_lock()
        if AccountingPeriod.objects.filter(month=month).exists():
            return {"month": f"{month:%Y-%m}", "already_closed": True, "synced": synced.as_dict(), "entries": 0}
        accrued = accrue_usage(month)
    # Obligations exist only for posted invoices (written with the invoice entry): no join needed.
    entries = accrued
    while True:
        with transaction.atomic():
            journal_lock()
            if AccountingPeriod.objects.filter(month=month).exists():
                break
            closed = closed_months()
            rows = list(ScheduleEntry.objects.select_related("obligation__invoice")
                        .filter(posted_entry__isnull=True, month__lte=month, obligation__voided=False)
                        .order_by("obligation__invoice_id", "month", "pk")[:CHUNK])
            if not rows:
                analyze_after_bulk(entries)
                summary = {"month": f"{month:%Y-%m}", "already_closed": False, "synced": synced.as_dict(),
                           "entries": entries, "usage_accruals": accrued}
                AccountingPeriod.objects.create(month=month, closed_at=timezone.now(), closed_by=actor,
                                                summary=summary)
                return summary
            # Finish an invoice's rows inside one chunk (its key is one entry per month and kind).
            last_invoice = rows[-1].obligation.invoice_id
            if len(rows) == CHUNK:
                head = [r for r in rows if r.obligation.invoice_id != last_invoice]
                if head:
                    rows = head
                else:
                    rows = list(ScheduleEntry.objects.select_related("obligation__invoice").filter(
                        posted_entry__isnull=True, month__lte=month, obligation__voided=False,
                        obligation__invoice_id=last_invoice))
            entries += _recognize_chunk(rows, month, closed)
    return {"month": f"{month:%Y-%m}", "already_closed": True, "synced": synced.as_dict(), "entries": entries}


def revrec_close_due(*, today: date | None = None, actor: str = "beat") -> list[dict]:
    """The beat entry: close every month before the current one that is not closed yet, oldest
    first, from the earliest month with a schedule entry. Runs daily; closes a month from the 3rd
    on, after the billing run of the 1st has invoiced its usage."""
    today = today or timezone.localdate()
    current = month_start(today)
    last = month_start(current - timedelta(days=1))
    if today.day < 3:
        last = month_start(last - timedelta(days=1))
    revrec_sync()  # schedules exist once their invoices are posted
    first = ScheduleEntry.objects.order_by("month").values_list("month", flat=True).first()
    done, closed = [], closed_months()
    cursor = first
    while cursor is not None and cursor <= last:
        if cursor not in closed:
            done.append(revrec_close(month=cursor, actor=actor))
        cursor = next_month(cursor)
    return done
