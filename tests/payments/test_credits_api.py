"""Wave-1 API gaps (API.md "Credits, overrides, credit notes"): balance, credit grants, price
overrides, credit-note void and listing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from customers.services import balance_adjust
from subscriptions.models import Subscription
from tests.payments.factories import customer, draft_invoice

pytestmark = pytest.mark.django_db


def test_balance_and_credit_grants(billing_api):
    cust = customer(collection_method="send_invoice")
    empty = billing_api.get(f"/api/v1/customers/{cust.external_id}/balance/").json()
    assert empty == {"customer": cust.external_id, "currency": "USD", "credit_balance": "0.00",
                     "prepaid_credit_available": "0.00", "ledger": []}
    grant = billing_api.post(f"/api/v1/customers/{cust.external_id}/credit_grants/",
                             {"amount": "150.00", "expires_on": "2099-12-31", "reference": "PO-7"}, format="json")
    assert grant.status_code == 201, grant.content
    assert (grant.json()["amount"], grant.json()["remaining"], grant.json()["reference"]) == ("150.00", "150.00", "PO-7")
    balance_adjust(customer=cust, currency="USD", amount=Decimal("25.50"), description="goodwill")
    body = billing_api.get(f"/api/v1/customers/{cust.external_id}/balance/").json()
    assert (body["credit_balance"], body["prepaid_credit_available"]) == ("25.50", "150.00")
    assert [(row["kind"], row["amount"]) for row in body["ledger"]] == [("adjustment", "25.50")]
    for bad, field in (({"amount": "0"}, "amount"), ({"amount": "abc"}, "amount"), ({"amount": "1.001"}, "amount"),
                       ({}, "amount"), ({"amount": "5", "expires_on": "soon"}, "expires_on")):
        response = billing_api.post(f"/api/v1/customers/{cust.external_id}/credit_grants/", bad, format="json")
        assert response.status_code == 400 and field in response.json()["error"]["fields"], (bad, response.content)
    assert billing_api.get("/api/v1/customers/nobody/balance/").status_code == 404
    assert billing_api.get(f"/api/v1/customers/{cust.external_id}/balance/?currency=XX1").status_code == 400


def test_price_override_creates_a_private_version(billing_api, admin_api):
    assert billing_api.post("/api/v1/billable_metrics/", {"code": "calls", "name": "Calls", "aggregation": "count"},
                            format="json").status_code == 201
    assert billing_api.post("/api/v1/plans/", {"code": "pro", "name": "Pro", "currency": "USD", "interval": "month",
                                               "amount": "100", "charges": [{"billable_metric": "calls", "model": "standard",
                                                                             "properties": {"unit_amount": "0.01"}}]},
                            format="json").status_code == 201
    cust = customer(collection_method="send_invoice", external_id="acme")
    created = billing_api.post("/api/v1/subscriptions/", {"external_id": "sub_acme", "customer": "acme", "plan": "pro",
                                                          "start_date": "2026-03-01"}, format="json")
    assert created.status_code == 201, created.content
    today = Subscription.objects.get(external_id="sub_acme").start_date
    response = billing_api.post("/api/v1/subscriptions/sub_acme/price_overrides/",
                                {"amount": "80", "charges": [{"billable_metric": "calls", "model": "standard",
                                                              "properties": {"unit_amount": "0.008"}}],
                                 "date": today.isoformat()}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["plan"], response.json()["plan_version"]) == ("pro", 2)
    sub = Subscription.objects.select_related("plan_version").get(external_id="sub_acme")
    assert sub.plan_version.customer_id == cust.pk and sub.plan_version.amount == Decimal("80")
    assert [str(c.properties["unit_amount"]) for c in sub.plan_version.charges.all()] == ["0.008"]
    assert billing_api.get("/api/v1/plans/pro/").json()["amount"] in ("100", "100.00")  # the public price is unchanged
    missing = billing_api.post("/api/v1/subscriptions/sub_acme/price_overrides/", {}, format="json")
    assert missing.status_code == 400 and "amount" in missing.json()["error"]["fields"]
    bad = billing_api.post("/api/v1/subscriptions/sub_acme/price_overrides/", {"amount": "-1"}, format="json")
    assert bad.status_code == 400 and "amount" in bad.json()["error"]["fields"]


def test_credit_note_void_and_listing(billing_api, django_capture_on_commit_callbacks):
    cust = customer(collection_method="send_invoice")
    invoice = draft_invoice(cust, "100.00")
    with django_capture_on_commit_callbacks(execute=True):
        assert billing_api.post(f"/api/v1/invoices/{invoice.pk}/finalize/").status_code == 200
    first = billing_api.post(f"/api/v1/invoices/{invoice.pk}/credit_notes/", {"amount": "10.00", "reason": "a"},
                             format="json").json()
    voided = billing_api.post(f"/api/v1/credit_notes/{first['id']}/void/", {"reason": "typo"}, format="json")
    assert voided.status_code == 200 and voided.json()["status"] == "void"
    assert billing_api.get(f"/api/v1/invoices/{invoice.pk}/").json()["amount_due"] == "100.00"
    assert billing_api.post(f"/api/v1/credit_notes/{first['id']}/void/", {}, format="json").status_code == 409

    billing_api.post(f"/api/v1/invoices/{invoice.pk}/payments/", {"amount": "100", "date": "2026-03-02"}, format="json")
    to_balance = billing_api.post(f"/api/v1/invoices/{invoice.pk}/credit_notes/",
                                  {"amount": "20.00", "reason": "b", "outcome": "credit_balance"}, format="json").json()
    refunded = billing_api.post(f"/api/v1/invoices/{invoice.pk}/credit_notes/",
                                {"amount": "5.00", "reason": "c", "outcome": "refund"}, format="json").json()
    assert billing_api.post(f"/api/v1/credit_notes/{refunded['id']}/void/", {}, format="json").status_code == 409
    # The balance credit is spent on a later invoice: the note can no longer be voided.
    later = draft_invoice(cust, "30.00")
    with django_capture_on_commit_callbacks(execute=True):
        assert billing_api.post(f"/api/v1/invoices/{later.pk}/finalize/").json()["credit_balance_applied"] == "20.00"
    used = billing_api.post(f"/api/v1/credit_notes/{to_balance['id']}/void/", {}, format="json")
    assert used.status_code == 409

    listed = billing_api.get(f"/api/v1/credit_notes/?invoice={invoice.pk}").json()["results"]
    assert sorted(n["id"] for n in listed) == sorted([first["id"], to_balance["id"], refunded["id"]])
    by_customer = billing_api.get(f"/api/v1/credit_notes/?customer={cust.external_id}").json()["results"]
    assert len(by_customer) == 3
    assert billing_api.get("/api/v1/credit_notes/?customer=nobody").json()["results"] == []
