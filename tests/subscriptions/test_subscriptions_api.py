from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from subscriptions.models import ProrationItem
from tests.catalog.factories import PlanVersionFactory
from tests.customers.factories import CustomerFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/subscriptions/"


@pytest.fixture
def setup(db):
    CustomerFactory(external_id="acme", currency="USD")
    PlanVersionFactory(plan__code="basic", plan__currency="USD", amount=Decimal("100"))
    PlanVersionFactory(plan__code="premium", plan__currency="USD", amount=Decimal("300"))
    PlanVersionFactory(plan__code="trial", plan__currency="USD", amount=Decimal("10"), trial_days=14)


def create(api, **overrides):
    body = {"external_id": "sub_1", "customer": "acme", "plan": "basic", "start_date": "2026-01-01", **overrides}
    return api.post(URL, body, format="json")


def test_create_and_read_round_trip(billing_api, setup):
    created = create(billing_api, quantity=2)
    assert created.status_code == 201, created.content
    body = billing_api.get(URL + "sub_1/").json()
    today = timezone.now().date()
    assert body["status"] == "active" and body["plan"] == "basic" and body["plan_version"] == 1
    assert (body["quantity"], body["customer"], body["billing_time"], body["start_date"]) == (2, "acme", "calendar", "2026-01-01")
    assert body["current_period_start"] == today.replace(day=1).isoformat()
    assert date.fromisoformat(body["current_period_end"]) > today
    assert body["trial_end_date"] is None and body["cancel_at_period_end"] is False and body["end_date"] is None


def test_create_defaults_and_trial(billing_api, setup):
    created = create(billing_api, plan="trial", start_date=None)
    assert created.status_code == 400  # null is not a date
    created = billing_api.post(URL, {"external_id": "t1", "customer": "acme", "plan": "trial"}, format="json")
    assert created.status_code == 201
    body = created.json()
    today = timezone.now().date()
    assert body["start_date"] == today.isoformat()
    assert body["status"] == "trialing" and body["trial_end_date"] == (today + timedelta(days=14)).isoformat()


@pytest.mark.parametrize("field,value,status", [
    ("customer", "nobody", 404), ("plan", "nope", 404), ("quantity", 0, 400), ("billing_time", "lunar", 400),
    ("start_date", "2026-13-01", 400),
])
def test_create_bad_input(billing_api, setup, field, value, status):
    response = create(billing_api, **{field: value})
    assert response.status_code == status, response.content
    assert field in response.json()["error"]["fields"]


def test_create_currency_mismatch_names_plan(billing_api, setup):
    PlanVersionFactory(plan__code="euro", plan__currency="EUR")
    response = create(billing_api, plan="euro")
    assert response.status_code == 400 and "plan" in response.json()["error"]["fields"]


def test_duplicate_is_409(billing_api, setup):
    assert create(billing_api).status_code == 201
    assert create(billing_api).status_code == 409


def test_change_plan_upgrade_then_cancel(billing_api, setup):
    assert create(billing_api).status_code == 201
    today = timezone.now().date()
    response = billing_api.post(URL + "sub_1/change_plan/", {"plan": "premium"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["plan"] == "premium" and body["change"]["applied"] is True
    assert body["change"]["effective_date"] == today.isoformat()
    sub_items = ProrationItem.objects.filter(subscription__external_id="sub_1")
    if today.day > 1:  # mid-period: credit for basic, charge for premium
        assert [i["kind"] for i in body["proration_items"]] == ["credit", "charge"]
        assert sum(i.amount for i in sub_items) > 0
    response = billing_api.post(URL + "sub_1/cancel/", {}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["cancel_at_period_end"] is True and body["end_date"] == body["current_period_end"]
    assert billing_api.post(URL + "sub_1/cancel/", {}, format="json").status_code == 409
    response = billing_api.post(URL + "sub_1/cancel/", {"at": "immediately"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    again = billing_api.post(URL + "sub_1/change_quantity/", {"quantity": 3}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_state"


def test_downgrade_is_scheduled_and_visible(billing_api, setup):
    assert create(billing_api, plan="premium").status_code == 201
    response = billing_api.post(URL + "sub_1/change_plan/", {"plan": "basic"}, format="json")
    body = response.json()
    assert response.status_code == 200 and body["plan"] == "premium"
    assert body["change"]["applied"] is False and body["change"]["effective_date"] == body["current_period_end"]
    assert [c["to_plan_version"]["plan"] for c in body["pending_changes"]] == ["basic"]
    changes = billing_api.get(URL + "sub_1/changes/").json()
    assert [c["kind"] for c in changes["results"]] == ["created", "plan"]


def test_change_quantity_and_invalid_dates(billing_api, setup):
    assert create(billing_api).status_code == 201
    response = billing_api.post(URL + "sub_1/change_quantity/", {"quantity": 4, "date": "2026-01-10"}, format="json")
    assert response.status_code == 200 and response.json()["quantity"] == 4
    future = (timezone.now().date() + timedelta(days=40)).isoformat()
    response = billing_api.post(URL + "sub_1/change_quantity/", {"quantity": 5, "date": future}, format="json")
    assert response.status_code == 400 and "date" in response.json()["error"]["fields"]
    response = billing_api.post(URL + "sub_1/change_plan/", {"plan": "premium", "effective": "someday"}, format="json")
    assert response.status_code == 400 and "effective" in response.json()["error"]["fields"]


def test_list_filters_and_scopes(billing_api, reader_api, usage_api, setup):
    CustomerFactory(external_id="globex", currency="USD")
    assert create(billing_api, external_id="a").status_code == 201
    assert create(billing_api, external_id="b", customer="globex").status_code == 201
    assert billing_api.post(URL + "b/cancel/", {"at": "immediately"}, format="json").status_code == 200
    listed = reader_api.get(URL).json()
    assert [s["external_id"] for s in listed["results"]] == ["a", "b"] and "next" in listed
    assert [s["external_id"] for s in reader_api.get(URL + "?customer=globex").json()["results"]] == ["b"]
    assert [s["external_id"] for s in reader_api.get(URL + "?status=active").json()["results"]] == ["a"]
    assert reader_api.post(URL + "a/cancel/", {}, format="json").status_code == 403
    assert usage_api.get(URL).status_code == 403
    assert reader_api.get(URL + "missing/").status_code == 404



def test_list_reads_pending_changes_in_one_query_per_page(billing_api, setup):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def list_body():
        with CaptureQueriesContext(connection) as queries:
            response = billing_api.get(URL)
        assert response.status_code == 200
        return response.json()["results"], len(queries)

    assert create(billing_api, external_id="sub_1").status_code == 201
    _, one_row = list_body()
    for n in (2, 3, 4):
        assert create(billing_api, external_id=f"sub_{n}", plan="premium").status_code == 201
    downgrade = billing_api.post(URL + "sub_2/change_plan/", {"plan": "basic"}, format="json")
    assert downgrade.status_code == 200 and downgrade.json()["change"]["applied"] is False
    rows, four_rows = list_body()
    assert [len(r["pending_changes"]) for r in rows] == [0, 1, 0, 0]
    assert rows[1]["pending_changes"][0]["to_plan_version"] == {"plan": "basic", "version": 1}
    assert four_rows == one_row
