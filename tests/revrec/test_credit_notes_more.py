"""More credit-note postings: by lines, refunds, balance outcomes, voided credit notes; refunds and admin pages."""

from datetime import date, datetime, timezone as dt_timezone
from decimal import Decimal as D

import pytest

from common.models import AuditEvent
from invoicing.credit_notes import credit_note_create, credit_note_void
from invoicing.services import invoice_mark_paid
from revrec.close import revrec_close
from revrec.models import JournalEntry, JournalLine, ScheduleEntry
from revrec.cash import post_refund
from revrec.postings import revrec_sync

pytestmark = pytest.mark.django_db


def signed(entry):
    return sorted((ln.account, ln.debit - ln.credit) for ln in entry.lines.all())


def test_credit_note_by_line_on_a_paid_invoice_refund_and_its_tax(books):
    # 200.00 fee (Jan–Feb, 59 days) + 50.00 one-off, tax 25.00 → 275.00, paid in full.
    invoice = books.invoice(issue=date(2025, 1, 1), tax="25.00",
                            lines=[("subscription", "200.00", date(2025, 1, 1), date(2025, 3, 1)),
                                   ("adjustment", "50.00", None, None)])
    invoice_mark_paid(invoice=invoice, amount=D("275.00"), paid_on=date(2025, 1, 3))
    revrec_close(month=date(2025, 1, 1))  # January: 200 × 31/59 = 105.08
    fee_line = invoice.lines.get(kind="subscription")
    note = credit_note_create(invoice=invoice, lines=[{"line_id": fee_line.pk, "amount": "100.00"}], reason="refund",
                              outcome="refund", issue_date=date(2025, 2, 10))
    assert (note.subtotal, note.tax, note.total) == (D("100.00"), D("10.00"), D("110.00"))
    revrec_sync()
    entry = JournalEntry.objects.get(source_type="credit_note")
    # recognized by February: 105.08 of 200.00 → 100 × 105.08 / 200 = 52.54 from revenue, 47.46 from deferred
    assert signed(entry) == [("cash", D("-110.00")), ("deferred_revenue", D("47.46")), ("revenue", D("52.54")),
                             ("tax_payable", D("10.00"))]
    february = ScheduleEntry.objects.get(obligation__invoice_line=fee_line, month=date(2025, 2, 1), treatment="deferred")
    assert february.amount == D("94.92") - D("47.46")
    revrec_close(month=date(2025, 2, 1))
    revenue = sum((ln.credit - ln.debit for ln in JournalLine.objects.filter(account="revenue")), D(0))
    assert revenue == D("150.00")  # 250 billed − 100 credited
    assert sum((ln.debit - ln.credit for ln in JournalLine.objects.filter(account="deferred_revenue")), D(0)) == 0


def test_credit_balance_outcome_and_voided_credit_note_restores_the_schedule(books):
    invoice = books.invoice(issue=date(2025, 1, 1), lines=[("subscription", "90.00", date(2025, 1, 1), date(2025, 4, 1))])
    invoice_mark_paid(invoice=invoice, amount=D("90.00"), paid_on=date(2025, 1, 2))
    note = credit_note_create(invoice=invoice, amount="30.00", reason="goodwill", issue_date=date(2025, 1, 15))
    revrec_sync()
    issued = JournalEntry.objects.get(source_type="credit_note", kind="issued")
    # nothing recognized before January: all 30.00 from deferred, to the customer's balance
    assert signed(issued) == [("customer_credit", D("-30.00")), ("deferred_revenue", D("30.00"))]
    before = list(ScheduleEntry.objects.filter(treatment="deferred").order_by("month").values_list("amount", flat=True))
    assert before == [D("20.67"), D("18.66"), D("20.67")]  # 60.00 over 31/28/31 days
    credit_note_void(credit_note=note, reason="mistake")
    AuditEvent.objects.filter(action="credit_note.voided").update(created_at=datetime(2025, 1, 20, 12, tzinfo=dt_timezone.utc))
    revrec_sync()
    voided = JournalEntry.objects.get(source_type="credit_note", kind="voided")
    assert signed(voided) == [("customer_credit", D("30.00")), ("deferred_revenue", D("-30.00"))]
    after = list(ScheduleEntry.objects.filter(treatment="deferred").order_by("month").values_list("amount", flat=True))
    assert sum(after) == D("90.00")
    for m in (1, 2, 3):
        revrec_close(month=date(2025, m, 1))
    assert sum((ln.credit - ln.debit for ln in JournalLine.objects.filter(account="revenue")), D(0)) == D("90.00")


def test_refund_posts_once(books):
    assert post_refund(source_id="re_1", amount=D("12.00"), currency="USD", on=date(2025, 3, 3)) is True
    assert post_refund(source_id="re_1", amount=D("12.00"), currency="USD", on=date(2025, 3, 3)) is False
    entry = JournalEntry.objects.get(source_type="refund")
    assert signed(entry) == [("accounts_receivable", D("12.00")), ("cash", D("-12.00"))]


def test_admin_pages_read_only(books, admin_client, client, django_user_model):
    from django.contrib.auth.models import Group

    books.invoice(issue=date(2025, 1, 1), lines=[("subscription", "100.00", date(2025, 1, 1), date(2025, 4, 1))])
    revrec_close(month=date(2025, 1, 1))
    page = admin_client.get("/admin/revrec/journalentry/reports/", {"month": "2025-01", "currency": "USD"})
    assert page.status_code == 200 and b"65.56" in page.content and b"34.44" in page.content
    assert admin_client.get("/admin/revrec/journalentry/").status_code == 200
    assert admin_client.get("/admin/revrec/performanceobligation/").status_code == 200
    entry = JournalEntry.objects.first()
    assert admin_client.get(f"/admin/revrec/journalentry/{entry.pk}/change/").status_code == 200
    assert admin_client.get("/admin/revrec/journalentry/add/").status_code == 403
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.groups.add(Group.objects.get(name="finance-viewer"))
    client.force_login(viewer)
    assert client.get("/admin/revrec/journalentry/reports/", {"month": "2025-01"}).status_code == 200
    assert client.post(f"/admin/revrec/journalentry/{entry.pk}/change/", {}).status_code == 403
