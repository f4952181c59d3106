"""Postings and month close, with hand-computed figures (DESIGN.md §8)."""

from datetime import date, datetime, timezone as dt_timezone
from decimal import Decimal as D

import pytest
from django.core.management import call_command

from invoicing.credit_notes import credit_note_create
from invoicing.models import Invoice
from invoicing.services import invoice_mark_paid, invoice_mark_uncollectible, invoice_void
from revrec.close import revrec_close
from revrec.models import AccountingPeriod, JournalEntry, JournalLine, ScheduleEntry
from revrec.postings import revrec_sync
from revrec.reports import reconciliation, rollforward, trial_balance

pytestmark = pytest.mark.django_db


def lines_of(entry):
    return sorted((ln.account, ln.debit, ln.credit) for ln in entry.lines.all())


def balance(account, through, currency="USD", invoice=None):
    rows = JournalLine.objects.filter(account=account, currency=currency, entry__date__lte=through)
    if invoice is not None:
        rows = rows.filter(invoice=invoice)
    return sum((ln.debit - ln.credit for ln in rows), D(0))


def close_year(year=2025, months=12):
    for m in range(1, months + 1):
        revrec_close(month=date(year, m, 1))


def test_yearly_fee_posts_to_deferred_and_recognizes_twelve_months(books):
    invoice = books.invoice(issue=date(2025, 1, 1), lines=[("subscription", "1000.00", date(2025, 1, 1), date(2026, 1, 1))])
    revrec_sync()
    entry = JournalEntry.objects.get(source_type="invoice", kind="finalized")
    assert (entry.date, entry.invoice_id) == (date(2025, 1, 1), invoice.pk)
    assert lines_of(entry) == [("accounts_receivable", D("1000.00"), D(0)), ("deferred_revenue", D(0), D("1000.00"))]
    close_year()
    recognitions = JournalEntry.objects.filter(source_type="recognition").order_by("date")
    amounts = [sum(ln.credit for ln in e.lines.all() if ln.account == "revenue") for e in recognitions]
    assert len(amounts) == 12 and sum(amounts) == D("1000.00")
    assert amounts[:2] == [D("84.93"), D("76.71")]  # 31/365 → 84.93; 59/365 → 161.64 − 84.93
    assert recognitions[0].date == date(2025, 1, 31) and recognitions[1].date == date(2025, 2, 28)
    assert balance("deferred_revenue", date(2025, 12, 31)) == 0
    assert balance("revenue", date(2025, 1, 31)) == D("-84.93")


def test_100_over_q1_books_34_44_31_12_34_44(books):
    books.invoice(issue=date(2025, 1, 1), lines=[("subscription", "100.00", date(2025, 1, 1), date(2025, 4, 1))])
    close_year(months=3)
    revenue = [-(balance("revenue", date(2025, m, 28) if m == 2 else date(2025, m, 31)) - prev)
               for m, prev in [(1, D(0)), (2, D("-34.44")), (3, D("-65.56"))]]
    assert revenue == [D("34.44"), D("31.12"), D("34.44")]


def test_usage_is_recognized_in_its_month_and_sits_in_unbilled_until_invoiced(books):
    # 50.00 of January usage, invoiced on 1 February.
    invoice = books.invoice(issue=date(2025, 2, 1), lines=[("usage", "50.00", date(2025, 1, 1), date(2025, 2, 1))])
    revrec_close(month=date(2025, 1, 1))
    accrual = JournalEntry.objects.get(source_type="recognition", kind="accrual")
    assert accrual.date == date(2025, 1, 31)
    assert lines_of(accrual) == [("revenue", D(0), D("50.00")), ("unbilled_receivable", D("50.00"), D(0))]
    assert balance("unbilled_receivable", date(2025, 1, 31)) == D("50.00")
    assert balance("revenue", date(2025, 1, 31)) == D("-50.00")
    billed = JournalEntry.objects.get(source_type="invoice", kind="finalized")
    assert billed.date == date(2025, 2, 1)
    assert lines_of(billed) == [("accounts_receivable", D("50.00"), D(0)), ("unbilled_receivable", D(0), D("50.00"))]
    assert balance("unbilled_receivable", date(2025, 2, 1)) == 0
    revrec_close(month=date(2025, 2, 1))
    assert balance("revenue", date(2025, 2, 28)) == D("-50.00")  # nothing twice
    assert invoice.pk == billed.invoice_id


def test_discount_reduces_lines_in_proportion_and_tax_is_never_revenue(books):
    # 300.00 fee (January) + 100.00 one-off, discount 40.00: shares 30.00 / 10.00; tax 36.00 → total 396.00.
    books.invoice(issue=date(2025, 1, 1), discount="40.00", tax="36.00",
                  lines=[("subscription", "300.00", date(2025, 1, 1), date(2025, 2, 1)), ("adjustment", "100.00", None, None)])
    revrec_sync()
    entry = JournalEntry.objects.get(source_type="invoice", kind="finalized")
    assert lines_of(entry) == [("accounts_receivable", D("396.00"), D(0)), ("deferred_revenue", D(0), D("270.00")),
                               ("revenue", D(0), D("90.00")), ("tax_payable", D(0), D("36.00"))]
    revrec_close(month=date(2025, 1, 1))
    assert balance("revenue", date(2025, 1, 31)) == D("-360.00")
    assert balance("tax_payable", date(2025, 1, 31)) == D("-36.00")


def test_credit_note_in_month_four_reverses_recognized_revenue_and_shrinks_the_rest(books):
    invoice = books.invoice(issue=date(2025, 1, 1), lines=[("subscription", "1200.00", date(2025, 1, 1), date(2026, 1, 1))])
    close_year(months=3)
    # Through March: 90/365 × 1200 = 295.89 recognized. Credit 600.00 on 15 April:
    # from revenue round(600 × 295.89 / 1200) = 147.945 → 147.95; from deferred 452.05;
    # April–December (904.11) shrink to 452.06.
    note = credit_note_create(invoice=invoice, amount="600.00", reason="downgrade", issue_date=date(2025, 4, 15))
    revrec_sync()
    entry = JournalEntry.objects.get(source_type="credit_note", kind="issued")
    assert entry.date == date(2025, 4, 15) and entry.source_id == str(note.pk)
    assert lines_of(entry) == [("accounts_receivable", D(0), D("600.00")), ("deferred_revenue", D("452.05"), D(0)),
                               ("revenue", D("147.95"), D(0))]
    future = ScheduleEntry.objects.filter(obligation__invoice=invoice, month__gte=date(2025, 4, 1), treatment="deferred")
    assert sum(e.amount for e in future) == D("452.06")
    assert sum(e.amount for e in ScheduleEntry.objects.filter(obligation__invoice=invoice)) == D("600.00")
    close_year()
    assert balance("revenue", date(2025, 12, 31)) == D("-600.00")
    assert balance("deferred_revenue", date(2025, 12, 31)) == 0
    april = rollforward(month=date(2025, 4, 1), currency="USD")
    # opening 1200 − 295.89 = 904.11; April recognition = 452.06 × 30/275 share (cumulative) — read it from the journal
    april_recognized = D(april["recognized"])
    assert D(april["credited"]) == D("452.05")
    assert D(april["closing_deferred"]) == D("904.11") - D("452.05") - april_recognized


def test_void_is_the_exact_reverse_and_nets_the_invoice_to_zero(books):
    invoice = books.invoice(issue=date(2025, 1, 1), tax="10.00",
                            lines=[("subscription", "100.00", date(2025, 1, 1), date(2025, 4, 1))])
    revrec_close(month=date(2025, 1, 1))
    invoice_void(invoice=invoice, reason="wrong customer")
    revrec_sync()
    void = JournalEntry.objects.get(source_type="void")
    # reverses the invoice (AR 110, tax 10, deferred 100) and January's recognition (34.44)
    assert sorted((a, d - c) for a, d, c in lines_of(void)) == [
        ("accounts_receivable", D("-110.00")), ("deferred_revenue", D("65.56")), ("revenue", D("34.44")),
        ("tax_payable", D("10.00"))]
    for account in ("accounts_receivable", "deferred_revenue", "revenue", "tax_payable"):
        assert balance(account, date(2030, 1, 1), invoice=invoice) == 0
    close_year(months=3)
    # the rest of the schedule never recognizes: January's recognition is the only one
    assert JournalEntry.objects.filter(source_type="recognition").count() == 1
    assert balance("revenue", date(2030, 1, 1)) == 0


def test_payment_uncollectible_and_credit_balance(books):
    paid = books.invoice(issue=date(2025, 1, 5), lines=[("adjustment", "80.00", None, None)])
    invoice_mark_paid(invoice=paid, amount=D("30.00"), paid_on=date(2025, 1, 20))
    lost = books.invoice(issue=date(2025, 1, 6), lines=[("adjustment", "20.00", None, None)])
    invoice_mark_uncollectible(invoice=lost, reason="gone")
    Invoice.objects.filter(pk=lost.pk).update(marked_uncollectible_at=datetime(2025, 1, 25, 12, tzinfo=dt_timezone.utc))
    credited = books.invoice(issue=date(2025, 1, 7), lines=[("adjustment", "15.00", None, None)],
                             credit_balance_applied="5.00")
    revrec_sync()
    payment = JournalEntry.objects.get(source_type="payment")
    assert (payment.date, lines_of(payment)) == (date(2025, 1, 20), [("accounts_receivable", D(0), D("30.00")),
                                                                      ("cash", D("30.00"), D(0))])
    written_off = JournalEntry.objects.get(source_type="uncollectible")
    assert lines_of(written_off) == [("accounts_receivable", D(0), D("20.00")), ("bad_debt", D("20.00"), D(0))]
    credits = JournalEntry.objects.get(source_type="invoice", kind="credits", invoice=credited)
    assert lines_of(credits) == [("accounts_receivable", D(0), D("5.00")), ("customer_credit", D("5.00"), D(0))]
    # AR: 80 − 30 + 20 − 20 + 15 − 5 = 60
    assert balance("accounts_receivable", date(2025, 1, 31)) == D("60.00")
    revrec_close(month=date(2025, 1, 1))
    recon = reconciliation(month=date(2025, 1, 1), currency="USD")
    assert (recon["billed"], recon["collected"], recon["recognized"]) == ("115.00", "30.00", "115.00")
    kinds = {k["kind"]: D(k["amount"]) for k in recon["billed_vs_collected"]}
    assert kinds == {"outstanding": D("60.00"), "credited": D("5.00"), "written_off": D("20.00"), "refunded": D(0),
                     "prior_period_collected": D(0)}


def test_closed_month_is_locked_late_items_post_on_the_first_open_day(books):
    revrec_close(month=date(2025, 1, 1))
    late = books.invoice(issue=date(2025, 1, 20), lines=[("subscription", "31.00", date(2025, 1, 1), date(2025, 2, 1))])
    revrec_sync()
    entry = JournalEntry.objects.get(source_type="invoice", invoice=late, kind="finalized")
    assert entry.date == date(2025, 2, 1) and entry.document_date == date(2025, 1, 20)
    assert "2025-01 was closed" in entry.note
    # January's service was earned before it was billed (posting month February): unbilled, accrued at February's close
    assert lines_of(entry) == [("accounts_receivable", D("31.00"), D(0)), ("unbilled_receivable", D(0), D("31.00"))]
    revrec_close(month=date(2025, 2, 1))
    accrual = JournalEntry.objects.get(source_type="recognition", invoice=late)
    assert accrual.date == date(2025, 2, 28) and "2025-01 was closed" in accrual.note
    assert not JournalEntry.objects.filter(date__lte=date(2025, 1, 31)).exists()


def test_rerunning_a_close_changes_nothing(books):
    books.invoice(issue=date(2025, 1, 1), lines=[("subscription", "100.00", date(2025, 1, 1), date(2025, 4, 1))])
    call_command("revrec_close", "--month", "2025-01")
    snapshot = list(JournalLine.objects.order_by("pk").values_list("pk", "account", "debit", "credit"))
    call_command("revrec_close", "--month", "2025-01")
    revrec_sync()
    assert list(JournalLine.objects.order_by("pk").values_list("pk", "account", "debit", "credit")) == snapshot
    assert AccountingPeriod.objects.filter(month=date(2025, 1, 1)).count() == 1


def test_trial_balance_sums_to_zero_and_rollforward_identity(books):
    books.invoice(issue=date(2025, 1, 1), tax="12.00",
                  lines=[("subscription", "100.00", date(2025, 1, 1), date(2025, 4, 1)),
                         ("usage", "20.00", date(2024, 12, 1), date(2025, 1, 1))])
    close_year(months=3)
    for m in (1, 2, 3):
        tb = trial_balance(currency="USD", through=date(2025, m, 28))
        assert tb["total"] == "0.00" and tb["total_debit"] == tb["total_credit"]
        rf = rollforward(month=date(2025, m, 1), currency="USD")
        assert D(rf["closing_deferred"]) == D(rf["opening_deferred"]) + D(rf["billed"]) - D(rf["recognized"]) - D(rf["credited"])
    assert rollforward(month=date(2025, 1, 1), currency="USD") == {
        "month": "2025-01", "currency": "USD", "opening_deferred": "0.00", "billed": "100.00", "recognized": "34.44",
        "credited": "0.00", "closing_deferred": "65.56"}


def test_close_refuses_a_month_that_has_not_ended_and_bad_input():
    from django.core.management.base import CommandError
    from django.utils import timezone

    with pytest.raises(CommandError, match="has not ended"):
        call_command("revrec_close", "--month", f"{timezone.localdate():%Y-%m}")
    with pytest.raises(CommandError, match="not a month"):
        call_command("revrec_close", "--month", "2025-1")
    assert not AccountingPeriod.objects.exists()


def test_beat_closes_every_past_month_from_the_third(books):
    from revrec.close import revrec_close_due

    books.invoice(issue=date(2025, 1, 1), lines=[("subscription", "100.00", date(2025, 1, 1), date(2025, 4, 1))])
    assert [s["month"] for s in revrec_close_due(today=date(2025, 3, 2))] == ["2025-01"]  # February waits for the 3rd
    assert [s["month"] for s in revrec_close_due(today=date(2025, 3, 3))] == ["2025-02"]
    assert revrec_close_due(today=date(2025, 3, 20)) == []
    assert sorted(AccountingPeriod.objects.values_list("month", flat=True)) == [date(2025, 1, 1), date(2025, 2, 1)]
    assert balance("revenue", date(2025, 2, 28)) == D("-65.56")
