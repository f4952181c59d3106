"""Closing a case (manual payment, credit note, void), policies, smart timing, network cap,
soft → hard reclassification, e-mail logging."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from common.models import AuditEvent
from dunning.models import DunningCase, DunningPolicy, DunningStep
from dunning.services import dunning_retry_now, policy_default, policy_for
from invoicing.credit_notes import credit_note_create
from invoicing.models import Invoice, InvoiceEmail
from invoicing.services import invoice_void
from payments.models import PaymentAttempt
from payments.services import payment_record_manual
from subscriptions.models import Subscription
from tests.dunning.helpers import attach, days, finalized_invoice, run_dunning, subscribed_customer

pytestmark = pytest.mark.django_db


def _open_case(api, capture, pm="pm_card_chargeDeclinedInsufficientFunds", **customer_kwargs):
    cust, sub = subscribed_customer(**customer_kwargs)
    attach(api, cust, pm)
    invoice = finalized_invoice(api, cust, sub, capture)
    return cust, sub, Invoice.objects.get(pk=invoice["id"]), DunningCase.objects.get(invoice_id=invoice["id"])


def test_manual_payment_recovers_the_case(billing_api, django_capture_on_commit_callbacks):
    cust, sub, invoice, case = _open_case(billing_api, django_capture_on_commit_callbacks)
    response = billing_api.post(f"/api/v1/invoices/{invoice.pk}/payments/",
                                {"amount": "40.00", "date": "2026-03-05"}, format="json")
    assert response.status_code == 201, response.content
    case.refresh_from_db()
    assert case.status == "open"  # 60.00 still due
    response = billing_api.post(f"/api/v1/invoices/{invoice.pk}/payments/",
                                {"amount": "60.00", "date": "2026-03-06"}, format="json")
    assert response.status_code == 201, response.content
    case.refresh_from_db()
    assert (case.status, case.close_reason) == ("recovered", "manual_payment")
    assert Subscription.objects.get(pk=sub.pk).status == "active"
    assert not DunningStep.objects.filter(case=case, status="scheduled").exists()
    # Nothing more happens for it.
    run_dunning(case.first_failed_at + days(22), django_capture_on_commit_callbacks)
    assert PaymentAttempt.objects.filter(invoice=invoice).count() == 1


def test_credit_note_clearing_the_amount_closes_the_case(billing_api, django_capture_on_commit_callbacks):
    cust, sub, invoice, case = _open_case(billing_api, django_capture_on_commit_callbacks)
    credit_note_create(invoice=invoice, amount=Decimal("30.00"), reason="partial goodwill")
    case.refresh_from_db()
    assert case.status == "open"
    credit_note_create(invoice=invoice, amount=Decimal("70.00"), reason="the rest")
    case.refresh_from_db()
    assert (case.status, case.close_reason) == ("canceled", "credit_note_cleared")
    assert Subscription.objects.get(pk=sub.pk).status == "active"


def test_void_closes_the_case(billing_api, django_capture_on_commit_callbacks):
    cust, sub, invoice, case = _open_case(billing_api, django_capture_on_commit_callbacks)
    invoice_void(invoice=invoice, reason="billed in error")
    case.refresh_from_db()
    assert (case.status, case.close_reason) == ("canceled", "invoice_voided")
    assert AuditEvent.objects.filter(action="dunning.case_canceled", object_id=str(case.pk)).count() == 1


def test_policy_per_currency_and_segment(db):
    from tests.customers.factories import CustomerFactory

    eur = DunningPolicy.objects.create(name="EUR", currency="EUR", retry_days=[2, 4])
    smb = DunningPolicy.objects.create(name="SMB", segment="smb")
    smb_eur = DunningPolicy.objects.create(name="SMB EUR", segment="smb", currency="EUR")
    plain = CustomerFactory(currency="EUR")
    small = CustomerFactory(currency="EUR", metadata={"segment": "smb"})
    assert policy_for(customer=plain, currency="EUR") == eur
    assert policy_for(customer=plain, currency="USD").name == "Default"
    assert policy_for(customer=small, currency="EUR") == smb_eur
    assert policy_for(customer=small, currency="USD") == smb


def test_smart_hour_from_the_customers_successful_payments(billing_api, django_capture_on_commit_callbacks):
    cust, sub = subscribed_customer(timezone="America/New_York")
    attach(billing_api, cust, "pm_card_visa")
    # Two earlier invoices paid by card; their charges succeeded at 14:xx UTC = 09:xx New York (EST).
    for stamp in (datetime(2026, 1, 5, 14, 10, tzinfo=timezone.utc), datetime(2026, 2, 5, 14, 40, tzinfo=timezone.utc)):
        paid = finalized_invoice(billing_api, cust, sub, django_capture_on_commit_callbacks)
        assert paid["status"] == "paid"
        PaymentAttempt.objects.filter(invoice_id=paid["id"]).update(completed_at=stamp)
    attach(billing_api, cust, "pm_card_chargeDeclinedDoNotHonor")
    invoice = finalized_invoice(billing_api, cust, sub, django_capture_on_commit_callbacks)
    case = DunningCase.objects.get(invoice_id=invoice["id"])
    assert case.retry_hour == 9 and case.timing_inputs["by_hour"] == {"9": 2}
    retries = list(DunningStep.objects.filter(case=case, kind="retry").order_by("scheduled_at"))
    assert len(retries) == 3  # do_not_honor: at most 3
    from zoneinfo import ZoneInfo

    assert {s.scheduled_at.astimezone(ZoneInfo("America/New_York")).hour for s in retries} == {9}
    opened = AuditEvent.objects.get(action="dunning.case_opened", object_id=str(case.pk))
    assert opened.inputs["history"]["successes"] == 2 and opened.inputs["classification"]["max_retries"] == 3


def test_network_cap_skips_retries(billing_api, django_capture_on_commit_callbacks):
    policy = policy_default()
    policy.network_cap_attempts = 2
    policy.save()
    cust, sub, invoice, case = _open_case(billing_api, django_capture_on_commit_callbacks)
    for day in range(1, 15):
        run_dunning(case.first_failed_at + days(day), django_capture_on_commit_callbacks)
    assert PaymentAttempt.objects.filter(invoice=invoice).count() == 2
    skipped = AuditEvent.objects.filter(action="dunning.retry_skipped", rule="network_cap")
    assert skipped.count() == 3 and skipped.first().inputs["cap"] == 2


def test_a_hard_decline_on_a_retry_stops_the_retries(billing_api, django_capture_on_commit_callbacks):
    cust, sub, invoice, case = _open_case(billing_api, django_capture_on_commit_callbacks)
    # The customer's new default card is a stolen one: the immediate retry declines hard.
    with django_capture_on_commit_callbacks(execute=True):
        attach(billing_api, cust, "pm_card_chargeDeclinedLostCard")
    case.refresh_from_db()
    assert (case.status, case.decline_code, case.decline_class) == ("action_required", "lost_card", "hard")
    assert not DunningStep.objects.filter(case=case, kind="retry", status="scheduled").exists()
    for day in range(1, 15):
        run_dunning(case.first_failed_at + days(day), django_capture_on_commit_callbacks)
    assert PaymentAttempt.objects.filter(invoice=invoice).count() == 2
    # The new-method request e-mail was sent and logged on the invoice's delivery log.
    logged = InvoiceEmail.objects.filter(invoice=invoice, requested_by__startswith="rule:dunning")
    assert logged.filter(subject__startswith="Action required", status="sent").count() >= 1


def test_retry_now_on_a_closed_case_is_a_conflict(billing_api, django_capture_on_commit_callbacks):
    from common.errors import ConflictError

    cust, sub, invoice, case = _open_case(billing_api, django_capture_on_commit_callbacks)
    payment_record_manual(invoice=invoice, amount=Decimal("100.00"))
    with pytest.raises(ConflictError):
        dunning_retry_now(case_id=case.pk)


def test_api_filters_and_errors(billing_api, reader_api, django_capture_on_commit_callbacks):
    cust, sub, invoice, case = _open_case(billing_api, django_capture_on_commit_callbacks)
    assert [c["id"] for c in reader_api.get("/api/v1/dunning_cases/?status=open").json()["results"]] == [case.pk]
    assert reader_api.get("/api/v1/dunning_cases/?status=recovered").json()["results"] == []
    assert reader_api.get("/api/v1/dunning_cases/?customer=nobody").json()["results"] == []
    bad = reader_api.get("/api/v1/dunning_cases/?status=nope")
    assert bad.status_code == 400 and "status" in bad.json()["error"]["fields"]
    assert reader_api.get("/api/v1/dunning_cases/999999/").status_code == 404
    assert reader_api.get("/api/v1/dunning_cases/abc/").status_code == 404
    detail = reader_api.get(f"/api/v1/dunning_cases/{case.pk}/").json()
    assert detail["customer"] == cust.external_id and detail["subscription"] == sub.external_id
    assert detail["amount_due"] == "100.00" and detail["first_failure"]["decline_code"] == "insufficient_funds"
