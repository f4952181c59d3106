"""API: /coupons/, /tax_rates/ and /customers/{external_id}/coupons/ (scopes, errors, shapes)."""

import datetime

import pytest

from invoicing.models import CouponRedemption
from subscriptions.models import Subscription
from tests.catalog.factories import PlanVersionFactory
from tests.customers.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_create_and_read_coupons(billing_api, reader_api):
    PlanVersionFactory(plan__code="pro")
    response = billing_api.post("/api/v1/coupons/", {"code": "TEN", "name": "10% off", "kind": "percent",
                                                      "percent_off": "10", "duration": "repeating",
                                                      "duration_periods": 3, "applies_to_plans": ["pro"]},
                                format="json")
    assert response.status_code == 201, response.json()
    assert response.json() | {"created_at": None} == {
        "code": "TEN", "name": "10% off", "kind": "percent", "amount_off": None, "currency": "", "percent_off": "10",
        "duration": "repeating", "duration_periods": 3, "applies_to_plans": ["pro"], "active": True, "redeem_by": None,
        "max_redemptions": None, "created_at": None}
    fixed = billing_api.post("/api/v1/coupons/", {"code": "FIVE", "name": "5 off", "kind": "fixed", "amount_off": "5",
                                                  "currency": "usd"}, format="json")
    assert fixed.status_code == 201 and fixed.json()["amount_off"] == "5.00" and fixed.json()["currency"] == "USD"
    assert reader_api.get("/api/v1/coupons/TEN/").json()["percent_off"] == "10"
    assert [c["code"] for c in reader_api.get("/api/v1/coupons/").json()["results"]] == ["FIVE", "TEN"]
    assert reader_api.get("/api/v1/coupons/NOPE/").status_code == 404


def test_coupon_errors(billing_api, reader_api):
    assert reader_api.post("/api/v1/coupons/", {"code": "X", "name": "x", "kind": "percent", "percent_off": "10"},
                           format="json").status_code == 403
    bad = billing_api.post("/api/v1/coupons/", {"code": "X", "name": "x", "kind": "percent", "percent_off": "150"},
                           format="json")
    assert bad.status_code == 400 and "percent_off" in bad.json()["error"]["fields"]
    billing_api.post("/api/v1/coupons/", {"code": "X", "name": "x", "kind": "percent", "percent_off": "10"},
                     format="json")
    again = billing_api.post("/api/v1/coupons/", {"code": "X", "name": "x", "kind": "percent", "percent_off": "10"},
                             format="json")
    assert again.status_code == 409


def test_apply_coupon_to_customer_and_subscription(billing_api, reader_api):
    version = PlanVersionFactory(plan__code="pro")
    customer = CustomerFactory(external_id="acme")
    Subscription.objects.create(external_id="sub_1", customer=customer, plan_version=version,
                                start_date=datetime.date(2026, 1, 1))
    billing_api.post("/api/v1/coupons/", {"code": "ONE", "name": "one", "kind": "percent", "percent_off": "10",
                                          "max_redemptions": 1}, format="json")
    billing_api.post("/api/v1/coupons/", {"code": "EUR", "name": "eur", "kind": "fixed", "amount_off": "5",
                                          "currency": "EUR"}, format="json")
    response = billing_api.post("/api/v1/customers/acme/coupons/", {"coupon": "ONE", "subscription": "sub_1"},
                                format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["coupon"], body["customer"], body["subscription"], body["periods_applied"], body["active"]) == (
        "ONE", "acme", "sub_1", 0, True)
    assert billing_api.post("/api/v1/customers/acme/coupons/", {"coupon": "ONE"}, format="json").status_code == 409
    wrong = billing_api.post("/api/v1/customers/acme/coupons/", {"coupon": "EUR"}, format="json")
    assert wrong.status_code == 400 and wrong.json()["error"]["fields"] == {"coupon": [
        "the coupon is in EUR, the customer is billed in USD."]}
    assert billing_api.post("/api/v1/customers/nobody/coupons/", {"coupon": "ONE"}, format="json").status_code == 404
    assert billing_api.post("/api/v1/customers/acme/coupons/", {"coupon": "NOPE"}, format="json").status_code == 404
    assert billing_api.post("/api/v1/customers/acme/coupons/", {"coupon": "EUR", "subscription": "sub_x"},
                            format="json").status_code == 404
    assert reader_api.post("/api/v1/customers/acme/coupons/", {"coupon": "ONE"}, format="json").status_code == 403
    listed = reader_api.get("/api/v1/customers/acme/coupons/").json()["results"]
    assert [r["coupon"] for r in listed] == ["ONE"]
    assert CouponRedemption.objects.count() == 1


def test_tax_rates_api(billing_api, reader_api, anon_api):
    response = billing_api.post("/api/v1/tax_rates/", {"name": "CA state", "country": "us", "region": "CA",
                                                        "rate": "7.25"}, format="json")
    assert response.status_code == 201, response.json()
    assert {k: response.json()[k] for k in ("name", "country", "region", "rate", "active")} == {
        "name": "CA state", "country": "US", "region": "CA", "rate": "7.2500", "active": True}
    bad = billing_api.post("/api/v1/tax_rates/", {"name": "x", "country": "XX", "rate": "7"}, format="json")
    assert bad.status_code == 400 and "country" in bad.json()["error"]["fields"]
    assert billing_api.post("/api/v1/tax_rates/", {"name": "x", "country": "US", "rate": "170"},
                            format="json").status_code == 400
    assert reader_api.post("/api/v1/tax_rates/", {"name": "x", "country": "US", "rate": "7"},
                           format="json").status_code == 403
    assert anon_api.get("/api/v1/tax_rates/").status_code == 401
    listed = reader_api.get("/api/v1/tax_rates/?country=US").json()["results"]
    assert [r["name"] for r in listed] == ["CA state"]
    assert reader_api.get(f"/api/v1/tax_rates/{listed[0]['id']}/").json()["rate"] == "7.2500"
