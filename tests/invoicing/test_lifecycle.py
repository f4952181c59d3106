"""Lifecycle through the API: finalize, pay (partially), void, 409s; the review queue; grace periods."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from common.models import AuditEvent
from common.timeutil import local_date
from invoicing.models import Invoice, InvoiceStatus
from payments.models import Payment  # manual payments are payments.Payment rows (issue 13)
from invoicing.services import invoice_approve, invoice_mark_uncollectible, invoices_auto_finalize
from tests.invoicing.conftest import lines_of

pytestmark = pytest.mark.django_db


def _at(month: int, day: int, hour: int = 12) -> str:
    return f"2026-{month:02d}-{day:02d}T{hour:02d}:00:00Z"


@pytest.fixture
def metered(world):
    """Arrears plan, 1.00 per call, no base fee; customer c1 subscribed from Jan 1."""
    world.metric("calls")
    world.plan("metered", pay_in_advance=False, charges=[{"billable_metric": "calls", "model": "standard",
                                                          "properties": {"unit_amount": "1.00"}}])
    return world


def _draft(world, *, calls=10, grace=5):
    world.customer("c1", invoice_grace_period_days=grace, net_terms_days=14)
    world.subscription("s1", customer="c1", plan="metered", start_date=date(2026, 1, 1))
    world.events("calls", [_at(1, 2, h % 24) for h in range(calls)], customer="c1")
    world.run(date(2026, 2, 1))
    (invoice,) = world.invoices(subscription="s1")
    assert invoice["status"] == "draft" and invoice["number"] is None
    return invoice["id"]


def test_finalize_pay_partially_then_fully(metered, billing_api):
    invoice_id = _draft(metered)
    response = billing_api.post(f"/api/v1/invoices/{invoice_id}/finalize/")
    assert response.status_code == 200, response.content
    body = response.json()
    # Finalized by hand today: issued today (the customer's local date), due 14 days later (DESIGN.md §6).
    today = local_date(timezone.now(), "UTC")
    assert (body["status"], body["number"], body["issue_date"], body["due_date"]) == (
        "finalized", "INV-2026-000001", today.isoformat(), (today + timedelta(days=14)).isoformat())
    assert body["customer_snapshot"]["name"] == "C1" and body["customer_snapshot"]["net_terms_days"] == 14

    again = billing_api.post(f"/api/v1/invoices/{invoice_id}/finalize/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_state"

    part = billing_api.post(f"/api/v1/invoices/{invoice_id}/mark_paid/",
                            {"amount": "4.00", "date": "2026-02-10", "reference": "wire 1"}, format="json")
    assert part.status_code == 200, part.content
    assert (part.json()["status"], part.json()["amount_paid"], part.json()["amount_due"]) == ("finalized", "4.00", "6.00")
    over = billing_api.post(f"/api/v1/invoices/{invoice_id}/mark_paid/", {"amount": "6.01"}, format="json")
    assert over.status_code == 400 and "amount" in over.json()["error"]["fields"]
    rest = billing_api.post(f"/api/v1/invoices/{invoice_id}/mark_paid/", {"date": "2026-02-12", "reference": "wire 2"},
                            format="json")
    assert (rest.json()["status"], rest.json()["amount_paid"], rest.json()["amount_due"]) == ("paid", "10.00", "0.00")
    assert list(Payment.objects.order_by("paid_on").values_list("amount", "reference")) == [
        (Decimal("4.0000"), "wire 1"), (Decimal("6.0000"), "wire 2")]

    assert billing_api.post(f"/api/v1/invoices/{invoice_id}/void/").status_code == 409
    assert billing_api.post(f"/api/v1/invoices/{invoice_id}/mark_paid/", {"amount": "1.00"}, format="json").status_code == 409


def test_void_and_illegal_transitions(metered, billing_api):
    invoice_id = _draft(metered)
    assert billing_api.post(f"/api/v1/invoices/{invoice_id}/mark_paid/", {"amount": "1.00"}, format="json").status_code == 409
    voided = billing_api.post(f"/api/v1/invoices/{invoice_id}/void/", {"reason": "duplicate order"}, format="json")
    assert voided.status_code == 200 and voided.json()["status"] == "void" and voided.json()["number"] is None
    assert billing_api.post(f"/api/v1/invoices/{invoice_id}/finalize/").status_code == 409
    assert billing_api.post(f"/api/v1/invoices/{invoice_id}/void/").status_code == 409
    assert AuditEvent.objects.filter(action="invoice.voided", object_id=invoice_id).get().inputs["reason"] == "duplicate order"


def test_uncollectible_then_paid(metered):
    invoice = Invoice.objects.get(pk=_draft(metered))
    from invoicing.services import invoice_finalize, invoice_mark_paid

    invoice_finalize(invoice=invoice)
    assert invoice_mark_uncollectible(invoice=invoice).status == InvoiceStatus.UNCOLLECTIBLE
    assert invoice_mark_paid(invoice=invoice, paid_on=date(2026, 6, 1)).status == InvoiceStatus.PAID


def test_api_errors_and_scopes(metered, billing_api, reader_api, anon_api):
    invoice_id = _draft(metered)
    assert billing_api.get("/api/v1/invoices/not-a-uuid/").status_code == 404
    assert billing_api.get("/api/v1/invoices/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert billing_api.post("/api/v1/billing_runs/", {"as_of": "2026-02-01"}, format="json").status_code == 403
    assert reader_api.get(f"/api/v1/invoices/{invoice_id}/").status_code == 200
    assert reader_api.post(f"/api/v1/invoices/{invoice_id}/finalize/").status_code == 403
    assert anon_api.get("/api/v1/invoices/").status_code == 401
    bad = metered.admin.post("/api/v1/billing_runs/", {"as_of": "yesterday"}, format="json")
    assert bad.status_code == 400 and "as_of" in bad.json()["error"]["fields"]
    assert billing_api.post(f"/api/v1/invoices/{invoice_id}/mark_paid/", {"amount": "abc"}, format="json").status_code in (400, 409)
    assert billing_api.get("/api/v1/billing_runs/999999/").status_code == 404


def test_list_filters(metered, billing_api):
    _draft(metered)
    metered.customer("c2")
    metered.subscription("s2", customer="c2", plan="metered", start_date=date(2026, 1, 1))
    metered.events("calls", [_at(1, 3)], customer="c2")
    metered.run(date(2026, 2, 1))
    assert [i["subscription"] for i in metered.invoices(customer="c2")] == ["s2"]
    assert [i["customer"] for i in metered.invoices(subscription="s1")] == ["c1"]
    assert {i["customer"] for i in metered.invoices(status="draft")} == {"c1"}
    assert {i["customer"] for i in metered.invoices(status="finalized")} == {"c2"}
    run = metered.run(date(2026, 2, 1))
    detail = billing_api.get(f"/api/v1/billing_runs/{run['id']}/").json()
    assert (detail["as_of"], detail["invoices_created"], detail["status"]) == ("2026-02-01", 0, "succeeded")


def test_grace_period_then_auto_finalize(metered):
    invoice_id = _draft(metered, grace=2)
    assert invoices_auto_finalize(today=date(2026, 2, 2)).finalized == 0
    assert invoices_auto_finalize(today=date(2026, 2, 3)).finalized == 1
    invoice = Invoice.objects.get(pk=invoice_id)
    # Issued the day the sweep finalized it (Feb 3, after the 2-day grace), due 14 days later.
    assert (invoice.status, invoice.number, invoice.issue_date, invoice.due_date) == (
        "finalized", "INV-2026-000001", date(2026, 2, 3), date(2026, 2, 17))
    audit = AuditEvent.objects.get(action="invoice.finalized", object_id=invoice_id)
    assert audit.rule == "auto_finalize_after_grace_period"
    assert audit.inputs["grace_period_days"] == 2 and audit.inputs["today"] == "2026-02-03"


def test_total_spike_waits_for_review_then_approval_finalizes(metered):
    metered.customer("c1")
    metered.subscription("s1", customer="c1", plan="metered", start_date=date(2026, 1, 1))
    metered.events("calls", [_at(1, 2, h) for h in range(10)], customer="c1")
    metered.events("calls", [_at(2, 2 + h // 24, h % 24) for h in range(31)], customer="c1")
    metered.run(date(2026, 2, 1))
    metered.run(date(2026, 3, 1))
    jan, feb = sorted(metered.invoices(subscription="s1"), key=lambda i: i["billing_date"])
    assert (jan["status"], jan["total"]) == ("finalized", "10.00")
    assert (feb["status"], feb["total"], feb["needs_review"]) == ("draft", "31.00", True)  # 31 > 3 × 10
    # the total-spike check is analytics' invoice_spike (registered review check): 31 > 3 × median(10)
    spike = next(r for r in feb["review_reasons"] if r["rule"] == "anomaly.invoice_spike")
    assert (spike["observed"], spike["expected"]) == ("31", "10")
    flagged = AuditEvent.objects.get(action="invoice.flagged", object_id=feb["id"], rule="anomaly.invoice_spike")
    assert flagged.inputs["observed"] == "31"

    assert invoices_auto_finalize(today=date(2026, 3, 20)).waiting_review == 1
    approved = invoice_approve(invoice=Invoice.objects.get(pk=feb["id"]), actor="finance:alice")
    assert (approved.status, approved.number, approved.approved_by) == ("finalized", "INV-2026-000002", "finance:alice")


def test_zero_usage_after_usage_is_flagged(metered):
    metered.customer("c1")
    metered.subscription("s1", customer="c1", plan="metered", start_date=date(2026, 1, 1))
    metered.events("calls", [_at(1, 2)], customer="c1")
    metered.run(date(2026, 2, 1))
    metered.run(date(2026, 3, 1))
    feb = max(metered.invoices(subscription="s1"), key=lambda i: i["billing_date"])
    assert lines_of(metered.invoice(feb["id"])) == [("usage", "calls", "0", "0.00")]
    assert (feb["status"], [r["rule"] for r in feb["review_reasons"]]) == ("draft", ["zero_usage_after_usage"])


def test_management_command_prints_counts(metered, capsys):
    metered.customer("c1")
    metered.subscription("s1", customer="c1", plan="metered", start_date=date(2026, 1, 1))
    call_command("run_billing", "--as-of", "2026-02-01")
    assert "invoices created 1" in capsys.readouterr().out
    call_command("run_billing", "--as-of", "2026-02-01")
    assert "invoices created 0" in capsys.readouterr().out
    assert Invoice.objects.count() == 1


def test_hourly_run_waits_for_the_local_midnight(metered):
    from datetime import datetime, timezone

    from invoicing.billing import billing_run

    metered.customer("la", timezone="America/Los_Angeles")
    metered.subscription("s1", customer="la", plan="metered", start_date=date(2026, 1, 1))
    metered.events("calls", ["2026-02-01T07:30:00Z"], customer="la")  # Jan 31, 23:30 in Los Angeles
    # 05:00 UTC on Feb 1 is still January 31st in Los Angeles: the period has not closed there.
    assert billing_run(as_of=date(2026, 2, 1), now=datetime(2026, 2, 1, 5, tzinfo=timezone.utc)).invoices_created == 0
    assert billing_run(as_of=date(2026, 2, 1), now=datetime(2026, 2, 1, 9, tzinfo=timezone.utc)).invoices_created == 1
    (invoice,) = metered.invoices(subscription="s1")
    assert lines_of(metered.invoice(invoice["id"])) == [("usage", "calls", "1", "1.00")]


def test_unknown_or_malformed_ids_are_404(admin_api):
    for url in ("/api/v1/billing_runs/abc/", "/api/v1/billing_runs/999999/", "/api/v1/invoices/not-a-uuid/",
                "/api/v1/credit_notes/not-a-uuid/", "/api/v1/credit_notes/00000000-0000-0000-0000-000000000000/"):
        response = admin_api.get(url)
        assert response.status_code == 404, url
        assert response.json()["error"]["code"] == "not_found"
