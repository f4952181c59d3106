"""Issue 14 "Done when", through the API and `run_dunning --as-of` stepped day by day against the
local Stripe sandbox."""

from __future__ import annotations

import pytest
from django.core import mail

from common.models import AuditEvent
from dunning.models import DunningCase, DunningStep
from payments.models import PaymentAttempt
from subscriptions.models import Subscription
from tests.dunning.helpers import attach, days, finalized_invoice, parse, run_dunning, subscribed_customer

pytestmark = pytest.mark.django_db


def _dunning_mail():
    return [m for m in mail.outbox if m.subject.startswith(("Payment failed", "Action required"))]


def _case(api, cust):
    response = api.get(f"/api/v1/dunning_cases/?customer={cust.external_id}")
    assert response.status_code == 200, response.content
    (case,) = response.json()["results"]
    detail = api.get(f"/api/v1/dunning_cases/{case['id']}/")
    assert detail.status_code == 200 and detail.json() == case
    return case


def test_insufficient_funds_four_retries_in_14_days_then_final_action_by_day_21(
        billing_api, django_capture_on_commit_callbacks):
    cust, sub = subscribed_customer(timezone="Europe/Paris")
    attach(billing_api, cust, "pm_card_chargeDeclinedInsufficientFunds")
    invoice = finalized_invoice(billing_api, cust, sub, django_capture_on_commit_callbacks)
    assert (invoice["status"], invoice["amount_due"]) == ("finalized", "100.00")

    case = _case(billing_api, cust)
    assert (case["status"], case["decline_class"], case["decline_code"], case["attempts"]) == (
        "open", "soft", "insufficient_funds", [])
    assert case["invoice"] == invoice["id"] and case["policy"] == "Default"
    assert case["next_action"]["kind"] in ("retry", "email")  # pay-day alignment may put day 3's e-mail first
    t0 = parse(case["first_failure"]["at"])
    assert Subscription.objects.get(pk=sub.pk).status == "past_due"
    # The first e-mail went out at once: HTML + text, the invoice PDF attached, the update link.
    (first,) = _dunning_mail()
    assert first.to == [cust.email] and "Payment failed" in first.subject
    assert first.alternatives[0][1] == "text/html" and f"/customers/{cust.external_id}/payment-method" in first.body
    assert first.attachments[0][2] == "application/pdf" and first.attachments[0][1][:4] == b"%PDF"

    retries_by_day = {}
    for day in range(1, 22):
        run_dunning(t0 + days(day), django_capture_on_commit_callbacks)
        retries_by_day[day] = PaymentAttempt.objects.filter(invoice_id=invoice["id"]).count() - 1
        if day < 21:
            assert billing_api.get(f"/api/v1/dunning_cases/{case['id']}/").json()["status"] == "open"
    case = billing_api.get(f"/api/v1/dunning_cases/{case['id']}/").json()
    assert retries_by_day[1] <= 1
    assert retries_by_day[14] == 4 and retries_by_day[21] == 4
    assert len(case["attempts"]) == 4
    for attempt in case["attempts"]:
        at = parse(attempt["at"])
        assert t0 + days(1) <= at <= t0 + days(14)
        assert (attempt["outcome"], attempt["decline_code"]) == ("failed", "insufficient_funds")
    # Final action by day 21: invoice uncollectible, subscription canceled (the default policy).
    assert (case["status"], case["next_action"]) == ("exhausted", None)
    assert billing_api.get(f"/api/v1/invoices/{invoice['id']}/").json()["status"] == "uncollectible"
    assert Subscription.objects.get(pk=sub.pk).status == "canceled"
    # E-mails: first failure, day 3, day 10.
    assert len(_dunning_mail()) == 3
    exhausted = AuditEvent.objects.get(action="dunning.case_exhausted")
    assert exhausted.inputs["retries_done"] == 4 and exhausted.rule == "final_day_21"
    retried = AuditEvent.objects.filter(action="dunning.retry_attempted")
    assert sorted(e.inputs["attempt_number"] for e in retried) == [2, 3, 4, 5]
    assert all(e.inputs["decline_code"] == "insufficient_funds" and "history" in e.inputs for e in retried)
    # A rerun changes nothing.
    before = PaymentAttempt.objects.count(), DunningStep.objects.filter(status="scheduled").count()
    assert "nothing due" in run_dunning(t0 + days(30), django_capture_on_commit_callbacks)
    assert (PaymentAttempt.objects.count(), DunningStep.objects.filter(status="scheduled").count()) == before


def test_stolen_card_gets_no_retry_and_a_new_method_request(billing_api, django_capture_on_commit_callbacks):
    cust, sub = subscribed_customer()
    attach(billing_api, cust, "pm_card_chargeDeclinedStolenCard")
    invoice = finalized_invoice(billing_api, cust, sub, django_capture_on_commit_callbacks)
    case = _case(billing_api, cust)
    assert (case["status"], case["decline_class"], case["decline_code"]) == ("action_required", "hard", "stolen_card")
    t0 = parse(case["first_failure"]["at"])
    (request,) = _dunning_mail()
    assert "Action required" in request.subject and "new payment method" in request.body
    for day in range(1, 22):
        run_dunning(t0 + days(day), django_capture_on_commit_callbacks)
    assert PaymentAttempt.objects.filter(invoice_id=invoice["id"]).count() == 1  # no retry at all
    case = billing_api.get(f"/api/v1/dunning_cases/{case['id']}/").json()
    assert (case["status"], case["attempts"]) == ("exhausted", [])
    assert AuditEvent.objects.filter(action="dunning.case_escalated", rule="escalate_hard_decline").count() == 1
    assert AuditEvent.objects.filter(action="dunning.retry_attempted").count() == 0


def test_attaching_pm_card_visa_recovers_at_once_and_reactivates(billing_api, django_capture_on_commit_callbacks):
    cust, sub = subscribed_customer()
    attach(billing_api, cust, "pm_card_chargeDeclinedInsufficientFunds")
    invoice = finalized_invoice(billing_api, cust, sub, django_capture_on_commit_callbacks)
    case = _case(billing_api, cust)
    run_dunning(parse(case["first_failure"]["at"]) + days(2), django_capture_on_commit_callbacks)
    assert Subscription.objects.get(pk=sub.pk).status == "past_due"

    with django_capture_on_commit_callbacks(execute=True):
        attach(billing_api, cust, "pm_card_visa")
    invoice = billing_api.get(f"/api/v1/invoices/{invoice['id']}/").json()
    assert (invoice["status"], invoice["amount_due"]) == ("paid", "0.00")
    case = billing_api.get(f"/api/v1/dunning_cases/{case['id']}/").json()
    assert (case["status"], case["next_action"]) == ("recovered", None)
    assert case["attempts"][-1]["outcome"] == "succeeded" and case["attempts"][-1]["rule"] == "new_payment_method"
    assert Subscription.objects.get(pk=sub.pk).status == "active"
    assert AuditEvent.objects.filter(action="dunning.case_recovered", object_id=str(case["id"])).count() == 1
    assert DunningStep.objects.filter(case_id=case["id"], status="scheduled").count() == 0


def test_expired_card_new_method_after_action_required(billing_api, django_capture_on_commit_callbacks):
    cust, sub = subscribed_customer()
    attach(billing_api, cust, "pm_card_chargeDeclinedExpiredCard")
    invoice = finalized_invoice(billing_api, cust, sub, django_capture_on_commit_callbacks)
    case = _case(billing_api, cust)
    assert (case["status"], case["decline_class"], case["decline_category"]) == (
        "action_required", "hard", "customer_action")
    with django_capture_on_commit_callbacks(execute=True):
        attach(billing_api, cust, "pm_card_mastercard")
    assert billing_api.get(f"/api/v1/invoices/{invoice['id']}/").json()["status"] == "paid"
    assert DunningCase.objects.get(pk=case["id"]).status == "recovered"
    assert Subscription.objects.get(pk=sub.pk).status == "active"
