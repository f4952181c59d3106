"""Open-period forecast (weekday-aware run-rate) and crossing dates of the next tier and of the
minimum commitment, hand-computed."""

from datetime import date, datetime, timedelta, timezone

import pytest

from subscriptions.models import Subscription
from usage.live import subscription_usage_current

pytestmark = pytest.mark.django_db


def _weekdays(start: date, end: date):
    d = start
    while d < end:
        if d.weekday() < 5:
            yield d
        d += timedelta(days=1)


def test_weekday_run_rate_and_crossing_dates(world, reader_api):
    world.metric("calls")
    world.plan("tiered", amount="0", pay_in_advance=False, minimum_commitment="350",
               charges=[{"billable_metric": "calls", "model": "graduated", "properties": {"tiers": [
                   {"up_to": 300, "unit_amount": "1"}, {"up_to": None, "unit_amount": "0.5"}]}}])
    world.customer("c1")
    world.subscription("s1", customer="c1", plan="tiered", start_date=date(2026, 1, 1))
    # 20 calls every weekday from Feb 2 (a Monday) to Mar 13, none at weekends
    stamps = [f"{d.isoformat()}T{h:02d}:00:00Z" for d in _weekdays(date(2026, 2, 2), date(2026, 3, 14)) for h in range(20)]
    world.events("calls", stamps, customer="c1")

    now = datetime(2026, 3, 15, tzinfo=timezone.utc)  # Sunday Mar 15, 00:00: 14 days of March elapsed
    usage = subscription_usage_current(subscription=Subscription.objects.get(external_id="s1"), now=now)
    assert usage["charges"][0]["units"] == "200"  # 10 weekdays × 20
    (charge,) = usage["forecast"]["charges"]
    # weekday rates over Feb 15–Mar 14: 20 on Mon–Fri, 0 at weekends; 12 weekdays remain (16–20, 23–27, 30, 31)
    # → 200 + 240 = 440 (a linear run-rate would say 200 / 14 × 31 = 443)
    assert (charge["method"], charge["units"], charge["amount"]) == ("weekday_run_rate", "440", "370.00")  # 300 + 140 × 0.5
    # past 300 units: 300 by Fri Mar 20, 320 on Mon Mar 23
    assert charge["next_tier"] == {"up_to": "300", "crossed": False, "date": "2026-03-23"}
    # 350.00 subtotal: Mar 26 → 380 units = 340.00; Mar 27 → 400 units = 350.00
    assert usage["forecast"]["minimum_commitment"] == {"amount": "350.00", "forecast_subtotal": "370.00",
                                                       "crossed": False, "date": "2026-03-27"}
    assert usage["forecast"]["total"] == "370.00"


def test_young_subscription_keeps_the_linear_run_rate(world):
    world.metric("calls")
    world.plan("std", amount="0", pay_in_advance=False,
               charges=[{"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "1"}}])
    world.customer("c1")
    world.subscription("s1", customer="c1", plan="std", start_date=date(2026, 3, 1))
    world.events("calls", [f"2026-03-{d:02d}T10:00:00Z" for d in range(1, 11)], customer="c1")
    now = datetime(2026, 3, 11, tzinfo=timezone.utc)  # 10 of 31 days
    usage = subscription_usage_current(subscription=Subscription.objects.get(external_id="s1"), now=now)
    (charge,) = usage["forecast"]["charges"]
    assert (charge["method"], charge["units"], charge["next_tier"]) == ("linear_run_rate", "31", None)
    assert usage["forecast"]["minimum_commitment"] is None
