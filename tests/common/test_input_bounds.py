"""Issue 10 items 4 and 5: bad input is a 400 in the error shape naming the field, never a 500;
one bad row never fails a list."""

import json
from datetime import date

import pytest

from subscriptions.models import Subscription

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(billing_api):
    billing_api.post("/api/v1/customers/", {"external_id": "c1", "name": "C", "currency": "USD"}, format="json")
    billing_api.post("/api/v1/billable_metrics/", {"code": "calls", "name": "Calls", "aggregation": "count"},
                     format="json")
    billing_api.post("/api/v1/plans/", {"code": "p", "name": "P", "currency": "USD", "interval": "month",
                                        "amount": "10", "pay_in_advance": False, "charges": []}, format="json")
    return billing_api


def assert_400_naming(response, field: str):
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"], response.json()


@pytest.mark.parametrize("start", ["9999-12-31", "0001-01-01", "1999-12-31", "2100-01-01"])
def test_subscription_start_date_out_of_bounds_is_a_400_and_saves_nothing(catalog, start):
    response = catalog.post("/api/v1/subscriptions/", {"external_id": "s1", "customer": "c1", "plan": "p",
                                                       "start_date": start}, format="json")
    assert_400_naming(response, "start_date")
    assert not Subscription.objects.exists()
    assert catalog.get("/api/v1/subscriptions/").status_code == 200


def test_change_and_cancel_dates_are_bounded(catalog):
    assert catalog.post("/api/v1/subscriptions/", {"external_id": "s1", "customer": "c1", "plan": "p",
                                                   "start_date": "2026-01-01"}, format="json").status_code == 201
    for url, body in [("/api/v1/subscriptions/s1/change_plan/", {"plan": "p", "date": "0001-01-01"}),
                      ("/api/v1/subscriptions/s1/change_quantity/", {"quantity": 2, "date": "9999-12-31"}),
                      ("/api/v1/subscriptions/s1/cancel/", {"at": "immediately", "date": "0001-01-01"})]:
        assert_400_naming(catalog.post(url, body, format="json"), "date")


@pytest.mark.parametrize("as_of", ["0001-01-01", "9999-12-31"])
def test_billing_run_as_of_is_bounded(admin_api, as_of):
    assert_400_naming(admin_api.post("/api/v1/billing_runs/", {"as_of": as_of}, format="json"), "as_of")


def test_a_list_survives_a_row_stored_before_the_bounds(catalog):
    assert catalog.post("/api/v1/subscriptions/", {"external_id": "s1", "customer": "c1", "plan": "p",
                                                   "start_date": "2026-01-01"}, format="json").status_code == 201
    Subscription.objects.filter(external_id="s1").update(start_date=date(9999, 12, 31))  # a legacy row
    response = catalog.get("/api/v1/subscriptions/")
    assert response.status_code == 200
    (row,) = response.json()["results"]
    assert (row["start_date"], row["current_period_start"], row["current_period_end"]) == ("9999-12-31", None, None)


def test_json_nested_hundreds_of_levels_is_a_400(billing_api):
    body = '{"external_id": "c2", "name": "x", "currency": "USD", "metadata": ' + '{"a": ' * 600 + "1" + "}" * 601
    response = billing_api.post("/api/v1/customers/", data=body, content_type="application/json")
    assert response.status_code == 400 and "nested deeper than 32" in response.json()["error"]["message"]
    response = billing_api.post("/api/v1/customers/", data="[" * 5000 + "]" * 5000, content_type="application/json")
    assert response.status_code == 400


def test_lone_surrogates_are_a_400(billing_api, usage_api):
    body = '{"external_id": "c3", "name": "bad \\ud800 name", "currency": "USD"}'
    response = billing_api.post("/api/v1/customers/", data=body, content_type="application/json")
    assert response.status_code == 400 and "surrogate" in response.json()["error"]["message"]
    response = usage_api.post("/api/v1/events/", data='{"transaction_id": "\\udfff"}', content_type="application/json")
    assert response.status_code == 400


def test_nan_and_infinity_are_not_json(billing_api):
    body = '{"external_id": "c4", "name": "x", "currency": "USD", "net_terms_days": NaN}'
    assert billing_api.post("/api/v1/customers/", data=body, content_type="application/json").status_code == 400


@pytest.mark.parametrize("field,value", [("quantity", 2**31), ("trial_days", 2**31), ("plan_version", 2**63)])
def test_integers_beyond_their_columns_are_a_400(catalog, field, value):
    body = {"external_id": "s1", "customer": "c1", "plan": "p", "start_date": "2026-01-01", field: value}
    assert_400_naming(catalog.post("/api/v1/subscriptions/", body, format="json"), field)


def test_coupon_and_tax_rate_integers_and_dates_are_bounded(billing_api):
    coupon = {"code": "x", "name": "X", "kind": "percent", "percent_off": "10", "duration": "repeating",
              "duration_periods": 2**31, "max_redemptions": 2**31, "redeem_by": "0001-01-01"}
    response = billing_api.post("/api/v1/coupons/", coupon, format="json")
    assert response.status_code == 400
    assert {"duration_periods", "max_redemptions", "redeem_by"} <= set(response.json()["error"]["fields"])
    rate = {"name": "VAT", "country": "DE", "rate": "19", "valid_from": "9999-12-31"}
    assert_400_naming(billing_api.post("/api/v1/tax_rates/", rate, format="json"), "valid_from")


def test_credit_note_line_id_beyond_bigint_is_a_400(billing_api):
    import uuid

    body = json.dumps({"reason": "x", "lines": [{"line_id": 2**63}]})
    response = billing_api.post(f"/api/v1/invoices/{uuid.uuid4()}/credit_notes/", data=body,
                                content_type="application/json")
    assert response.status_code in (400, 404) and response.status_code != 500
