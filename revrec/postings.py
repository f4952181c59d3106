"""Posting source documents to the journal (DESIGN.md §8).

The journal is written by a sweep (`revrec_sync`), not from inside other apps' transactions: it
finds finalized invoices, credit notes (issued and voided), voids, write-offs and payments that
have no journal entry yet and posts them. Every entry is unique per (source_type, source_id,
kind), and every posting transaction first takes one transaction-level advisory lock
(`journal_lock()`, shared with the month close), re-checks what is still unposted and writes: a rerun or
a concurrent run posts nothing twice.

Postings (signed: + debit, − credit):
- invoice finalized: Dr AR (total) / Cr tax payable, Cr deferred revenue (schedule months from
  the posting month on), Cr unbilled receivable (months before it: earned before billed, accrued
  at those months' close), Cr revenue (point-in-time lines: earned on delivery);
  credit balance / prepaid credit applied: Dr customer credit / Cr AR (kind `credits`);
  a net-credit invoice: Dr AR / Cr customer credit.
- credit note: for each obligation it credits, the part its line had recognized on the credit
  note's date is reversed from revenue, the rest from deferred revenue (and the rest of the
  schedule shrinks in proportion); tax from tax payable; against AR (amount due reduced),
  customer credit (balance) or cash (refund). A voided credit note posts the exact reverse.
- void: the exact reverse of everything posted on the invoice so far (it nets to zero).
- uncollectible: Dr bad debt / Cr AR (the amount due).
- payment (payments.Payment, card or manual, once per row): Dr cash / Cr AR (applied), Cr customer
  credit (cash beyond what was due); refund without a credit note (payments.Refund): Dr customer
  credit (the payment's unapplied part) or AR (the rest) / Cr cash; dispute (`invoice.payment_reversed`):
  Dr AR / Cr cash for the reopened amount. (Cash postings live in revrec/cash.py.)

Dates: the source document's own date; a date in a closed month moves to the first open day
after it, and the entry carries a note saying so.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import CharField, Exists, F, OuterRef
from django.db.models.functions import Cast
from django.utils import timezone

from common.locks import row_lock
from common.models import AuditEvent
from common.money import quantize_money
from customers.models import BalanceTransactionKind, CustomerBalanceTransaction
from invoicing.models import CreditNote, CreditNoteLine, CreditNoteOutcome, CreditNoteStatus, Invoice, InvoiceLine
from revrec.models import (Account, AccountingPeriod, EntryTreatment, JournalEntry, JournalLine, ObligationKind,
                           PerformanceObligation, ScheduleEntry, UsageAccrual)
from revrec.schedules import (allocate_discount, cumulative_split, month_start, next_month, ratable_schedule, shrink)

log = logging.getLogger(__name__)
ZERO = Decimal(0)
LOCK_KEY = 0x52455652  # "REVR": one advisory lock for every journal writer (sync, close, direct postings)
BATCH = 500

RATABLE_KINDS = {"subscription", "proration"}
USAGE_KINDS = {"usage", "late_usage", "minimum_commitment"}


def journal_lock() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])


def closed_months() -> set[date]:
    return set(AccountingPeriod.objects.values_list("month", flat=True))


def posting_date(day: date, closed: set[date]) -> tuple[date, str]:
    """The date an item dated `day` posts on: itself, or the first open day after its closed month."""
    moved = day
    while month_start(moved) in closed:
        moved = next_month(moved)
    if moved != day:
        return moved, f"dated {day.isoformat()}; {day:%Y-%m} was closed, posted on the first open day after it"
    return day, ""


@dataclass
class Draft:
    """An unsaved journal entry and its signed lines (+ debit, − credit)."""

    date: date
    currency: str
    memo: str
    source_type: str
    source_id: str
    kind: str
    document_date: date
    invoice_id: object = None
    customer_id: object = None
    note: str = ""
    lines: list = field(default_factory=list)

    def add(self, account: str, amount: Decimal, *, invoice_id=None, obligation=None, unlinked: bool = False) -> None:
        """`unlinked`: the line belongs to no invoice (e.g. cash received beyond what an invoice was due)."""
        if amount:
            invoice = None if unlinked else invoice_id if invoice_id is not None else self.invoice_id
            self.lines.append((account, amount, invoice, obligation))

    def balanced(self) -> bool:
        return sum((a for _, a, _, _ in self.lines), ZERO) == 0


def write_entries(drafts: list[Draft]) -> list[JournalEntry]:
    """Insert entries and their lines (two INSERTs). The deferred trigger checks balance at commit."""
    drafts = [d for d in drafts if d.lines]
    for d in drafts:
        if not d.balanced():
            raise ValueError(f"unbalanced journal entry {d.source_type}/{d.source_id}/{d.kind}: {d.lines}")
    entries = JournalEntry.objects.bulk_create([
        JournalEntry(date=d.date, currency=d.currency, memo=d.memo[:500], source_type=d.source_type,
                     source_id=d.source_id, kind=d.kind, invoice_id=d.invoice_id, customer_id=d.customer_id,
                     document_date=d.document_date, note=d.note[:300]) for d in drafts], batch_size=1000)
    lines = []
    for entry, d in zip(entries, drafts):
        for account, amount, invoice_id, obligation in d.lines:
            lines.append(JournalLine(entry=entry, account=account, debit=amount if amount > 0 else ZERO,
                                     credit=-amount if amount < 0 else ZERO, currency=d.currency,
                                     invoice_id=invoice_id,
                                     obligation_id=getattr(obligation, "pk", obligation)))
    JournalLine.objects.bulk_create(lines, batch_size=2000)
    return entries


def posted_keys(source_type: str, kind: str, ids) -> set[str]:
    return set(JournalEntry.objects.filter(source_type=source_type, kind=kind, source_id__in=[str(i) for i in ids])
               .values_list("source_id", flat=True))


def local_day(moment) -> date:
    return timezone.localdate(moment) if moment else timezone.localdate()


# --- obligations and schedules ----------------------------------------------------------------

def obligation_kind(line: InvoiceLine) -> str:
    has_period = line.period_start is not None and line.period_end is not None and line.period_end > line.period_start
    if line.kind in RATABLE_KINDS and has_period:
        return ObligationKind.RATABLE
    if line.kind in USAGE_KINDS and has_period:
        return ObligationKind.USAGE
    return ObligationKind.POINT_IN_TIME


def _released(lines: list[InvoiceLine], nets: list[Decimal], accruals: list, currency: str) -> dict:
    """{line index: (released, accrued_through)}: the usage accrued at month closes for the
    billing periods these usage lines bill, split over the lines of each period in proportion to
    their net amounts (cumulative rounding: the parts sum to the accrual exactly)."""
    out: dict = {}
    for p_start, p_end, amount, through, _ in accruals:
        members = [i for i, ln in enumerate(lines) if ln.kind == "usage" and obligation_kind(ln) == ObligationKind.USAGE
                   and p_start <= ln.period_start < p_end and i not in out]
        if not members:
            continue
        for i, part in zip(members, cumulative_split(amount, [max(nets[i], ZERO) for i in members], currency)):
            out[i] = (part, through)
    return out


def build_obligations(invoice: Invoice, lines: list[InvoiceLine], post_on: date, accruals: list | None = None) -> list[tuple]:
    """[(PerformanceObligation (unsaved), [(month, amount, treatment)])] for a finalized invoice
    posted on `post_on`. `accruals`: the unreleased usage accruals of its subscription
    (revrec.accruals.unreleased_by_subscription). Pure apart from its inputs."""
    currency = invoice.currency
    shares = allocate_discount(invoice.discount, [ln.amount for ln in lines], currency)
    nets = [quantize_money(line.amount - share, currency) for line, share in zip(lines, shares)]
    released = _released(lines, nets, accruals or [], currency)
    posting_month = month_start(post_on)
    out = []
    for index, (line, share, net) in enumerate(zip(lines, shares, nets)):
        kind = obligation_kind(line)
        if kind == ObligationKind.POINT_IN_TIME:
            start, end = invoice.issue_date, date.fromordinal(invoice.issue_date.toordinal() + 1)
            schedule = [(posting_month, net, EntryTreatment.IMMEDIATE)]
        elif index in released:
            # Usage accrued at earlier closes: that part was recognized then (Dr unbilled / Cr
            # revenue) and is released from unbilled receivable; the rest is the usage after the
            # accrued days (by its schedule) or, when the estimate was too high, a true-up.
            start, end = line.period_start, line.period_end
            part, through = released[index]
            schedule = [(month_start(through - timedelta(days=1)), part, EntryTreatment.RELEASED)]
            rest = net - part
            rest_start = max(through, start)
            if rest > 0 and rest_start < end:
                # Usage is billed in arrears: what falls in the posting month is earned by now.
                schedule += [(m, a, EntryTreatment.ACCRUED if m < posting_month else
                              EntryTreatment.IMMEDIATE if m == posting_month else EntryTreatment.DEFERRED)
                             for m, a in ratable_schedule(rest, rest_start, end, currency)]
            elif rest:
                schedule.append((posting_month, rest, EntryTreatment.IMMEDIATE))
        else:
            start, end = line.period_start, line.period_end
            schedule = [(m, a, EntryTreatment.ACCRUED if m < posting_month else EntryTreatment.DEFERRED)
                        for m, a in ratable_schedule(net, start, end, currency)]
        obligation = PerformanceObligation(invoice_id=invoice.pk, invoice_line_id=line.pk, customer_id=invoice.customer_id,
                                           currency=currency, kind=kind, line_amount=line.amount, discount=share,
                                           amount=net, service_start=start, service_end=end)
        out.append((obligation, schedule))
    return out


# --- invoices ---------------------------------------------------------------------------------

def _unposted_invoices():
    posted = JournalEntry.objects.filter(source_type="invoice", kind="finalized", invoice_id=OuterRef("pk"))
    return Invoice.objects.filter(finalized_at__isnull=False, number__isnull=False).exclude(Exists(posted))


def post_invoices(invoice_ids: list) -> int:
    """Post the finalized invoices among `invoice_ids` that are not posted yet (one transaction)."""
    with transaction.atomic():
        journal_lock()
        posted = set(JournalEntry.objects.filter(source_type="invoice", kind="finalized", invoice_id__in=invoice_ids)
                     .values_list("invoice_id", flat=True))
        invoices = [i for i in Invoice.objects.filter(pk__in=invoice_ids, finalized_at__isnull=False, number__isnull=False)
                    .order_by("issue_date", "number") if i.pk not in posted]
        if not invoices:
            return 0
        closed = closed_months()
        lines_by: dict = defaultdict(list)
        for line in InvoiceLine.objects.filter(invoice__in=invoices).order_by("invoice_id", "position", "pk"):
            lines_by[line.invoice_id].append(line)
        from revrec.accruals import unreleased_by_subscription  # noqa: PLC0415 — cycle: revrec.accruals imports this module

        accruals = unreleased_by_subscription({i.subscription_id for i in invoices if i.subscription_id})
        obligations, schedules, drafts = [], [], []
        for invoice in invoices:
            post_on, note = posting_date(invoice.issue_date, closed)
            pending = accruals.get(invoice.subscription_id, []) if invoice.subscription_id else []
            built = build_obligations(invoice, lines_by[invoice.pk], post_on, pending)
            used = [g for g in pending if any(t == EntryTreatment.RELEASED and g[0] <= o.service_start < g[1]
                                              for o, sched in built for _, _, t in sched)]
            if used:
                UsageAccrual.objects.filter(pk__in=[pk for g in used for pk in g[4]]).update(released_invoice=invoice)
                accruals[invoice.subscription_id] = [g for g in pending if g not in used]
                trued = sum((a for o, sched in built for _, a, t in sched
                             if t == EntryTreatment.IMMEDIATE and o.kind == ObligationKind.USAGE), ZERO)
                text = (f"usage accrued at close released from unbilled receivable "
                        f"({sum((g[2] for g in used), ZERO)}); true-up of the estimate to revenue: {trued}")
                note = f"{note}; {text}" if note else text
            for obligation, schedule in built:
                obligations.append(obligation)
                schedules.append(schedule)
            drafts.extend(_invoice_drafts(invoice, built, post_on, note))
        PerformanceObligation.objects.bulk_create(obligations, batch_size=1000)
        entries = write_entries(drafts)
        invoice_entry = {e.invoice_id: e for e in entries if e.kind == "finalized"}
        rows = []
        for obligation, schedule in zip(obligations, schedules):
            for month, amount, treatment in schedule:
                rows.append(ScheduleEntry(obligation=obligation, month=month, amount=amount, treatment=treatment,
                                          posted_entry=invoice_entry.get(obligation.invoice_id)
                                          if treatment in (EntryTreatment.IMMEDIATE, EntryTreatment.RELEASED) else None))
        ScheduleEntry.objects.bulk_create(rows, batch_size=2000)
        return len(invoices)


def _invoice_drafts(invoice: Invoice, built: list, post_on: date, note: str) -> list[Draft]:
    main = Draft(date=post_on, currency=invoice.currency, memo=f"Invoice {invoice.number}", source_type="invoice",
                 source_id=str(invoice.pk), kind="finalized", document_date=invoice.issue_date, invoice_id=invoice.pk,
                 customer_id=invoice.customer_id, note=note)
    main.add(Account.ACCOUNTS_RECEIVABLE, invoice.total)
    main.add(Account.TAX_PAYABLE, -invoice.tax)
    accounts = {EntryTreatment.IMMEDIATE: Account.REVENUE, EntryTreatment.ACCRUED: Account.UNBILLED_RECEIVABLE,
                EntryTreatment.DEFERRED: Account.DEFERRED_REVENUE, EntryTreatment.RELEASED: Account.UNBILLED_RECEIVABLE}
    for obligation, schedule in built:
        per_account: dict = defaultdict(lambda: ZERO)
        for _, amount, treatment in schedule:
            per_account[accounts[treatment]] += amount
        for account, amount in per_account.items():
            main.add(account, -amount, obligation=obligation)
    if not main.balanced():
        # Totals are sums of rounded lines (invoicing.totals); a mismatch is a data error, never hidden.
        raise ValueError(f"invoice {invoice.number}: total {invoice.total} ≠ lines − discount + tax")
    drafts = [main]
    credits = Draft(date=post_on, currency=invoice.currency, memo=f"Credits applied to invoice {invoice.number}",
                    source_type="invoice", source_id=str(invoice.pk), kind="credits", document_date=invoice.issue_date,
                    invoice_id=invoice.pk, customer_id=invoice.customer_id, note=note)
    applied = invoice.credit_balance_applied + invoice.prepaid_applied
    if applied:
        credits.add(Account.CUSTOMER_CREDIT, applied)
        credits.add(Account.ACCOUNTS_RECEIVABLE, -applied)
    if invoice.total < 0:
        credits.add(Account.ACCOUNTS_RECEIVABLE, -invoice.total)
        credits.add(Account.CUSTOMER_CREDIT, invoice.total)
    drafts.append(credits)
    return drafts


# --- credit notes -----------------------------------------------------------------------------

def _recognized_by(entries: list[ScheduleEntry], month: date) -> tuple[Decimal, list[ScheduleEntry]]:
    """What the schedule had recognized by `month` (entries before it, immediate ones and credit
    reversals) and the entries still to come."""
    recognized, future = ZERO, []
    for entry in entries:
        if entry.treatment in (EntryTreatment.IMMEDIATE, EntryTreatment.CREDIT, EntryTreatment.RELEASED) or entry.month < month:
            recognized += entry.amount
        else:
            future.append(entry)
    return recognized, future


def post_credit_note(note: CreditNote) -> bool:
    with transaction.atomic():
        journal_lock()
        if posted_keys("credit_note", "issued", [note.pk]):
            return False
        if not JournalEntry.objects.filter(source_type="invoice", kind="finalized", invoice_id=note.invoice_id).exists():
            post_invoices([note.invoice_id])
        currency = note.currency
        post_on, text = posting_date(note.issue_date, closed_months())
        month = month_start(post_on)
        obligations = list(PerformanceObligation.objects.select_for_update().filter(invoice_id=note.invoice_id,
                                                                                    voided=False).order_by("pk"))
        by_line = {o.invoice_line_id: o for o in obligations}
        weights: dict = defaultdict(lambda: ZERO)
        for line_id, amount in CreditNoteLine.objects.filter(credit_note=note, invoice_line__isnull=False) \
                .values_list("invoice_line_id", "amount"):
            if line_id in by_line:
                weights[by_line[line_id].pk] += amount
        if not weights:
            for o in obligations:
                remaining = o.amount - o.credited
                if remaining > 0:
                    weights[o.pk] = remaining
        chosen = [o for o in obligations if o.pk in weights]
        shares = cumulative_split(note.subtotal, [weights[o.pk] for o in chosen], currency) if chosen else []
        draft = Draft(date=post_on, currency=currency, memo=f"Credit note {note.number} on invoice {note.invoice.number}",
                      source_type="credit_note", source_id=str(note.pk), kind="issued", document_date=note.issue_date,
                      invoice_id=note.invoice_id, customer_id=note.customer_id, note=text)
        entry_rows: dict = defaultdict(list)
        for row in ScheduleEntry.objects.select_for_update().filter(obligation__in=chosen).order_by("month", "pk"):
            entry_rows[row.obligation_id].append(row)
        pending = []
        for obligation, credit in zip(chosen, shares):
            rows = entry_rows[obligation.pk]
            recognized, future = _recognized_by(rows, month)
            open_future = [r for r in future if r.posted_entry_id is None]
            left = obligation.amount - obligation.credited
            from_revenue = quantize_money(credit * recognized / left, currency) if left else credit
            from_deferred = credit - from_revenue
            unrecognized = sum((r.amount for r in open_future), ZERO)
            if from_deferred > unrecognized:
                from_deferred, from_revenue = unrecognized, credit - unrecognized
            for row, amount in zip(open_future, shrink([r.amount for r in open_future], from_deferred, currency)):
                if row.amount != amount:
                    row.amount = amount
                    row.save(update_fields=["amount"])
            deferred_account = Account.DEFERRED_REVENUE
            if open_future and all(r.treatment == EntryTreatment.ACCRUED for r in open_future):
                deferred_account = Account.UNBILLED_RECEIVABLE
            draft.add(Account.REVENUE, from_revenue, obligation=obligation)
            draft.add(deferred_account, from_deferred, obligation=obligation)
            obligation.credited += credit
            obligation.save(update_fields=["credited"])
            if from_revenue:
                pending.append((obligation, month, -from_revenue))
        draft.add(Account.TAX_PAYABLE, note.tax)
        for account, amount in _credit_counter_accounts(note):
            draft.add(account, amount)
        if not chosen and note.subtotal:
            draft.add(Account.REVENUE, note.subtotal)
        (entry,) = write_entries([draft])
        ScheduleEntry.objects.bulk_create([ScheduleEntry(obligation=o, month=m, amount=a, treatment=EntryTreatment.CREDIT,
                                                         posted_entry=entry) for o, m, a in pending])
        return True


def _credit_counter_accounts(note: CreditNote) -> list[tuple]:
    """Where a credit note goes: AR (the amount due it reduced), customer credit (balance, and the
    excess of an amount-due reduction) or cash (refund). Signed credit amounts."""
    if note.outcome == CreditNoteOutcome.REFUND:
        return [(Account.CASH, -note.total)]
    if note.outcome == CreditNoteOutcome.CREDIT_BALANCE:
        return [(Account.CUSTOMER_CREDIT, -note.total)]
    row = CustomerBalanceTransaction.objects.filter(kind=BalanceTransactionKind.CREDIT_NOTE,
                                                    credit_note_id=str(note.pk)).first()
    excess = row.amount if row is not None else ZERO
    return [(Account.ACCOUNTS_RECEIVABLE, -(note.total - excess)), (Account.CUSTOMER_CREDIT, -excess)]


def post_credit_note_void(note: CreditNote) -> bool:
    """The exact reverse of the credit note's entry; the schedule gets back what it lost."""
    with transaction.atomic():
        journal_lock()
        if posted_keys("credit_note", "voided", [note.pk]):
            return False
        original = JournalEntry.objects.filter(source_type="credit_note", source_id=str(note.pk), kind="issued").first()
        if original is None:
            post_credit_note(note)
            original = JournalEntry.objects.get(source_type="credit_note", source_id=str(note.pk), kind="issued")
        event = AuditEvent.objects.filter(action="credit_note.voided", object_id=str(note.pk)).order_by("created_at").first()
        voided_on = local_day(event.created_at if event else note.updated_at)
        post_on, text = posting_date(voided_on, closed_months())
        month = month_start(post_on)
        draft = Draft(date=post_on, currency=note.currency, memo=f"Void of credit note {note.number}",
                      source_type="credit_note", source_id=str(note.pk), kind="voided", document_date=voided_on,
                      invoice_id=note.invoice_id, customer_id=note.customer_id, note=text)
        pending = []
        for line in original.lines.all():
            signed = line.debit - line.credit
            account = line.account
            if line.obligation_id and account in (Account.DEFERRED_REVENUE, Account.UNBILLED_RECEIVABLE):
                obligation = row_lock(PerformanceObligation, line.obligation_id)
                open_rows = list(ScheduleEntry.objects.select_for_update().filter(
                    obligation=obligation, posted_entry__isnull=True, month__gte=month).order_by("month", "pk"))
                if open_rows:
                    for row, amount in zip(open_rows, shrink([r.amount for r in open_rows], -signed, note.currency)):
                        row.amount = amount
                        row.save(update_fields=["amount"])
                else:  # nothing left to recognize: what the credit took from deferred is earned again now
                    account = Account.REVENUE
                    pending.append((obligation, month, signed))
            elif line.obligation_id and account == Account.REVENUE:
                pending.append((PerformanceObligation.objects.get(pk=line.obligation_id), month, signed))
            draft.lines.append((account, -signed, line.invoice_id, line.obligation_id))
        for obligation_id in {ln.obligation_id for ln in original.lines.all() if ln.obligation_id}:
            credited = sum((ln.debit - ln.credit for ln in original.lines.all() if ln.obligation_id == obligation_id), ZERO)
            PerformanceObligation.objects.filter(pk=obligation_id).update(credited=F("credited") - credited)
        (entry,) = write_entries([draft])
        ScheduleEntry.objects.bulk_create([ScheduleEntry(obligation=o, month=m, amount=a, treatment=EntryTreatment.CREDIT,
                                                         posted_entry=entry) for o, m, a in pending])
        return True


# --- voids, write-offs ------------------------------------------------------------------------

def post_invoice_void(invoice: Invoice) -> bool:
    """The exact reverse of everything posted on the invoice: it nets to zero in the journal, and
    what is left of its schedules is never recognized."""
    with transaction.atomic():
        journal_lock()
        if posted_keys("void", "voided", [invoice.pk]):
            return False
        if not JournalEntry.objects.filter(source_type="invoice", kind="finalized", invoice_id=invoice.pk).exists():
            post_invoices([invoice.pk])
        voided_on = local_day(invoice.voided_at)
        post_on, text = posting_date(voided_on, closed_months())
        draft = Draft(date=post_on, currency=invoice.currency, memo=f"Void of invoice {invoice.number}",
                      source_type="void", source_id=str(invoice.pk), kind="voided", document_date=voided_on,
                      invoice_id=invoice.pk, customer_id=invoice.customer_id, note=text)
        net: dict = defaultdict(lambda: ZERO)
        for account, obligation_id, debit, credit in JournalLine.objects.filter(
                invoice_id=invoice.pk, entry__source_type__in=["invoice", "recognition", "credit_note", "uncollectible"]) \
                .values_list("account", "obligation_id", "debit", "credit"):
            net[(account, obligation_id)] += debit - credit
        for (account, obligation_id), amount in sorted(net.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
            draft.add(account, -amount, obligation=obligation_id)
        (entry,) = write_entries([draft]) or (None,)
        PerformanceObligation.objects.filter(invoice_id=invoice.pk).update(voided=True)
        # Its usage is unbilled again: the accruals it released wait for the invoice that bills it.
        UsageAccrual.objects.filter(released_invoice=invoice).update(released_invoice=None)
        if entry is not None:
            ScheduleEntry.objects.filter(obligation__invoice_id=invoice.pk, posted_entry__isnull=True).update(posted_entry=entry)
        return True


def post_uncollectible(invoice: Invoice) -> bool:
    with transaction.atomic():
        journal_lock()
        if posted_keys("uncollectible", "written_off", [invoice.pk]):
            return False
        event = AuditEvent.objects.filter(action="invoice.marked_uncollectible", object_id=str(invoice.pk)) \
            .order_by("created_at").first()
        amount = Decimal(event.inputs.get("amount_due")) if event and event.inputs.get("amount_due") else invoice.amount_due
        day = local_day(invoice.marked_uncollectible_at)
        post_on, text = posting_date(day, closed_months())
        draft = Draft(date=post_on, currency=invoice.currency, memo=f"Invoice {invoice.number} written off",
                      source_type="uncollectible", source_id=str(invoice.pk), kind="written_off", document_date=day,
                      invoice_id=invoice.pk, customer_id=invoice.customer_id, note=text)
        draft.add(Account.BAD_DEBT, amount)
        draft.add(Account.ACCOUNTS_RECEIVABLE, -amount)
        write_entries([draft])
        return True


def analyze_after_bulk(rows: int, threshold: int = 1000) -> None:
    """Refresh the planner's statistics after a bulk load (a first sync or close over thousands of
    invoices): with stale row counts PostgreSQL picks nested-loop anti-joins for the sweeps."""
    if rows >= threshold:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE revrec_journalentry, revrec_journalline, revrec_scheduleentry, "
                           "revrec_performanceobligation")


# --- the sweep --------------------------------------------------------------------------------

@dataclass
class SyncResult:
    invoices: int = 0
    credit_notes: int = 0
    credit_note_voids: int = 0
    uncollectible: int = 0
    voids: int = 0
    payments: int = 0
    refunds: int = 0
    reversals: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def revrec_sync() -> SyncResult:
    """Post every source document not posted yet, in dependency order. Safe to rerun and to run
    twice at once."""
    result = SyncResult()
    ids = list(_unposted_invoices().order_by("issue_date", "number").values_list("pk", flat=True))
    for start in range(0, len(ids), BATCH):
        result.invoices += post_invoices(ids[start:start + BATCH])
    analyze_after_bulk(result.invoices)

    for note in unposted_documents(CreditNote.objects.select_related("invoice"), "credit_note", "issued").order_by("issue_date", "number"):
        result.credit_notes += post_credit_note(note)
    for note in unposted_documents(CreditNote.objects.select_related("invoice").filter(status=CreditNoteStatus.VOID),
                          "credit_note", "voided").order_by("updated_at"):
        result.credit_note_voids += post_credit_note_void(note)
    for invoice in unposted_documents(Invoice.objects.filter(marked_uncollectible_at__isnull=False, number__isnull=False),
                             "uncollectible", "written_off").order_by("marked_uncollectible_at"):
        result.uncollectible += post_uncollectible(invoice)
    from revrec.cash import sweep_cash  # noqa: PLC0415 — cycle: revrec.cash builds its entries with this module's Draft

    sweep_cash(result)
    for invoice in unposted_documents(Invoice.objects.filter(voided_at__isnull=False, finalized_at__isnull=False,
                                                    number__isnull=False), "void", "voided").order_by("voided_at"):
        result.voids += post_invoice_void(invoice)
    return result


def unposted_documents(queryset, source_type: str, kind: str):
    posted = JournalEntry.objects.filter(source_type=source_type, kind=kind, source_id=OuterRef("pk_text"))
    return queryset.annotate(pk_text=Cast("pk", CharField())).exclude(Exists(posted))
