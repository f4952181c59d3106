"""Usage threshold alerts: units and amount thresholds, once per period, audit, API."""

from datetime import date, datetime, timedelta, timezone

import pytest
from django.utils import timezone as dj_timezone

from analytics.alerts import usage_alert_create, usage_alerts_evaluate, usage_alerts_for_subscription
from common.models import AuditEvent
from subscriptions.models import Subscription

pytestmark = pytest.mark.django_db


def _setup(world, start):
    world.metric("calls")
    world.plan("std", amount="0", pay_in_advance=False,
               charges=[{"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "2"}}])
    world.customer("c1")
    return world.subscription("s1", customer="c1", plan="std", start_date=start)


def _calls(world, day: date, n: int, hour=10):
    world.events("calls", [f"{day.isoformat()}T{hour:02d}:{m:02d}:00Z" for m in range(n)], customer="c1")


def test_units_and_amount_thresholds_fire_once_per_period(world):
    sub = _setup(world, date(2026, 3, 1))
    units = usage_alert_create(subscription=sub, billable_metric_code="calls", threshold_units=10)
    amount = usage_alert_create(subscription=sub, billable_metric_code="calls", threshold_amount=30)
    _calls(world, date(2026, 3, 2), 8)
    t1 = datetime(2026, 3, 3, tzinfo=timezone.utc)
    assert usage_alerts_evaluate(now=t1) == 0  # 8 calls, 16.00
    _calls(world, date(2026, 3, 3), 4, hour=1)
    t2 = datetime(2026, 3, 3, 2, tzinfo=timezone.utc)
    assert usage_alerts_evaluate(now=t2) == 1  # 12 ≥ 10 units; 24.00 < 30.00
    assert usage_alerts_evaluate(now=t2 + timedelta(minutes=1)) == 0  # once per period
    _calls(world, date(2026, 3, 3), 3, hour=3)
    t3 = datetime(2026, 3, 3, 4, tzinfo=timezone.utc)
    assert usage_alerts_evaluate(now=t3) == 1  # 15 calls = 30.00
    rows = {r["id"]: r for r in usage_alerts_for_subscription(subscription=sub, now=t3)}
    assert (rows[units.pk]["triggered_at"], rows[amount.pk]["triggered_at"]) == (t2.isoformat(), t3.isoformat())
    assert (rows[units.pk]["threshold_units"], rows[amount.pk]["threshold_amount"]) == ("10", "30.00")
    crossed = AuditEvent.objects.filter(action="usage.threshold_crossed")
    assert sorted((e.object_id, e.inputs["units"], e.inputs["amount"]) for e in crossed) == sorted([
        (str(units.pk), "12", "24.00"), (str(amount.pk), "15", "30.00")])

    # April is a new period: nothing triggered yet, then the units alert fires again
    april = datetime(2026, 4, 2, tzinfo=timezone.utc)
    assert all(r["triggered_at"] is None for r in usage_alerts_for_subscription(subscription=sub, now=april))
    _calls(world, date(2026, 4, 1), 10)
    assert usage_alerts_evaluate(now=april) == 1
    assert AuditEvent.objects.filter(action="usage.threshold_crossed").count() == 3


def test_alerts_api(world, billing_api, reader_api):
    today = dj_timezone.now().date()
    _setup(world, today - timedelta(days=3))
    url = "/api/v1/subscriptions/s1/alerts/"
    r = billing_api.post(url, {"billable_metric": "calls", "threshold_units": "2"}, format="json")
    assert r.status_code == 201, r.content
    assert (r.json()["threshold_units"], r.json()["triggered_at"]) == ("2", None)
    for bad, field in [({"billable_metric": "calls"}, "threshold_units"),
                       ({"billable_metric": "calls", "threshold_units": "1", "threshold_amount": "1"}, "threshold_units"),
                       ({"billable_metric": "nope", "threshold_units": "1"}, "billable_metric"),
                       ({"billable_metric": "calls", "threshold_amount": "-1"}, "threshold_amount")]:
        bad_r = billing_api.post(url, bad, format="json")
        assert bad_r.status_code == 400 and field in bad_r.json()["error"]["fields"], bad_r.content
    assert reader_api.post(url, {"billable_metric": "calls", "threshold_units": "2"}, format="json").status_code == 403
    assert billing_api.get("/api/v1/subscriptions/nope/alerts/").status_code == 404
    now = dj_timezone.now()
    world.events("calls", [(now - timedelta(minutes=2)).isoformat(), (now - timedelta(minutes=1)).isoformat()],
                 customer="c1")
    assert usage_alerts_evaluate() == 1
    (row,) = reader_api.get(url).json()["results"]
    assert row["triggered_at"] is not None and row["billable_metric"] == "calls"
    assert Subscription.objects.get(external_id="s1").pk


def test_webhook_payloads_show_the_resources(world):
    from webhooks.payloads import event_data

    sub = _setup(world, date(2026, 3, 1))
    alert = usage_alert_create(subscription=sub, billable_metric_code="calls", threshold_units=10)
    data = event_data(object_type="analytics.usagealert", object_id=str(alert.pk), inputs={})
    assert (data["id"], data["subscription"], data["threshold_units"]) == (alert.pk, "s1", "10")
