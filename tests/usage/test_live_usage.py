from datetime import date, datetime, timedelta, timezone

import pytest
from django.utils import timezone as dj_timezone

from tests.catalog.factories import ChargeFactory
from tests.customers.factories import CustomerFactory
from tests.subscriptions.factories import SubscriptionFactory
from usage.live import subscription_usage_current
from usage.services.ingest import event_ingest_batch


@pytest.fixture
def rated_subscription(make_metric):
    calls = make_metric("api_calls")
    gb = make_metric("storage_gb", "sum", "gb")
    sub = SubscriptionFactory(customer=CustomerFactory(external_id="acme"), external_id="sub_live",
                              start_date=date(2026, 1, 1))
    ChargeFactory.graduated(plan_version=sub.plan_version, billable_metric=calls, position=1)
    ChargeFactory(plan_version=sub.plan_version, billable_metric=gb, model="standard",
                  properties={"unit_amount": "2"}, position=2)
    return sub


def _events(prefix: str, code: str, timestamps, properties=None):
    return [{"transaction_id": f"{prefix}{i}", "subscription": "sub_live", "code": code, "timestamp": ts,
             "properties": properties or {}} for i, ts in enumerate(timestamps)]


@pytest.mark.django_db
def test_open_period_rated_with_tiers_and_linear_forecast(rated_subscription):
    march = [f"2026-03-{1 + i % 15:02d}T{i % 24:02d}:00:00Z" for i in range(60)]
    body = (_events("c", "api_calls", march) + _events("old", "api_calls", ["2026-02-27T00:00:00Z"] * 2)
            + _events("g", "storage_gb", ["2026-03-02T00:00:00Z"] * 3, {"gb": "1.5"}))
    assert event_ingest_batch(events=body).accepted == len(body)

    now = datetime(2026, 3, 16, tzinfo=timezone.utc)  # 15 of March's 31 days elapsed
    usage = subscription_usage_current(subscription=rated_subscription, now=now)
    assert (usage["period_start"], usage["period_end"], usage["currency"]) == ("2026-03-01", "2026-04-01", "USD")
    calls, gb = usage["charges"]
    assert (calls["billable_metric"], calls["units"], calls["event_count"], calls["amount"]) == ("api_calls", "60", 60, "2350.00")
    assert [(t["units"], t["amount"]) for t in calls["tiers"]] == [("50", "2000"), ("10", "350")]
    assert (gb["units"], gb["amount"]) == ("4.5", "9.00")
    assert usage["total"] == "2359.00"
    forecast = usage["forecast"]
    assert forecast["elapsed_fraction"] == "0.4839"
    # 60 calls in 15/31 of the period → 124 → 50×40 + 74×35; 4.5 GB → 9.3 GB × 2
    assert [(f["units"], f["amount"]) for f in forecast["charges"]] == [("124", "4590.00"), ("9.3", "18.60")]
    assert forecast["total"] == "4608.60"


@pytest.mark.django_db
def test_usage_endpoint(reader_api, usage_api, rated_subscription):
    now = dj_timezone.now()
    body = _events("n", "api_calls", [(now - timedelta(seconds=5)).isoformat()] * 3)
    assert event_ingest_batch(events=body).accepted == 3
    response = reader_api.get("/api/v1/subscriptions/sub_live/usage/")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["subscription"] == "sub_live"
    assert data["charges"][0]["units"] == "3" and data["charges"][0]["amount"] == "120.00"
    assert set(data["forecast"]) >= {"charges", "total", "elapsed_fraction", "method"}
    assert reader_api.get("/api/v1/subscriptions/nope/usage/").status_code == 404
    assert usage_api.get("/api/v1/subscriptions/sub_live/usage/").status_code == 403


@pytest.mark.django_db
def test_open_period_counts_only_what_it_will_bill(rated_subscription):
    """Usage in a trial is never billed, and usage before `usage_billed_through` (the part of the
    period an immediate plan change already invoiced) is billed: neither belongs to the open period."""
    body = (_events("trial", "api_calls", ["2026-03-05T12:00:00Z"] * 4)
            + _events("billed", "api_calls", ["2026-03-12T12:00:00Z"] * 2)
            + _events("open", "api_calls", ["2026-03-20T12:00:00Z"] * 3))
    assert event_ingest_batch(events=body).accepted == len(body)
    now = datetime(2026, 3, 25, tzinfo=timezone.utc)

    rated_subscription.trial_end_date = date(2026, 3, 10)
    usage = subscription_usage_current(subscription=rated_subscription, now=now)
    assert (usage["charges"][0]["units"], usage["charges"][0]["amount"]) == ("5", "200.00")
    # the window is [Mar 10, Apr 1): 15 of its 22 days elapsed
    assert usage["forecast"]["elapsed_fraction"] == "0.6818"

    rated_subscription.usage_billed_through = date(2026, 3, 15)
    usage = subscription_usage_current(subscription=rated_subscription, now=now)
    assert (usage["charges"][0]["units"], usage["charges"][0]["amount"]) == ("3", "120.00")
    assert usage["period_start"] == "2026-03-01"
