"""Customer-local 'today' (Auckland vs Los Angeles at the same instant) and the beat sweeps."""

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from subscriptions import selectors
from subscriptions.periods import Period
from subscriptions.selectors import subscription_current_period, subscription_today
from subscriptions.tasks import activate_trials, apply_due_changes
from subscriptions.services import subscription_cancel
from tests.subscriptions.factories import SubscriptionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def at_instant(monkeypatch):
    def set_now(instant):
        monkeypatch.setattr(selectors.timezone, "now", lambda: instant)
    return set_now


def test_local_today_decides_the_current_period(at_instant):
    # 2026-03-31 12:30 UTC is already April 1 in Auckland (+13) and still March 31 in Los Angeles (−7).
    at_instant(datetime(2026, 3, 31, 12, 30, tzinfo=timezone.utc))
    nz = SubscriptionFactory(customer__timezone="Pacific/Auckland", start_date=date(2026, 1, 1))
    la = SubscriptionFactory(customer__timezone="America/Los_Angeles", start_date=date(2026, 1, 1))
    assert subscription_today(subscription=nz) == date(2026, 4, 1)
    assert subscription_today(subscription=la) == date(2026, 3, 31)
    assert subscription_current_period(subscription=nz) == Period(date(2026, 4, 1), date(2026, 5, 1))
    assert subscription_current_period(subscription=la) == Period(date(2026, 3, 1), date(2026, 4, 1))
    # the April period's UTC window differs by customer
    april = Period(date(2026, 4, 1), date(2026, 5, 1))
    assert april.bounds_utc("Pacific/Auckland")[0] == datetime(2026, 3, 31, 11, tzinfo=timezone.utc)
    assert april.bounds_utc("America/Los_Angeles")[0] == datetime(2026, 4, 1, 7, tzinfo=timezone.utc)


def test_current_period_after_end_is_the_last_served():
    sub = SubscriptionFactory(start_date=date(2026, 1, 1))
    subscription_cancel(subscription=sub, at="immediately", on=date(2026, 2, 10), today=date(2026, 2, 10))
    sub.refresh_from_db()
    assert subscription_current_period(subscription=sub, today=date(2026, 6, 1)) == Period(date(2026, 2, 1), date(2026, 3, 1))


def test_beat_sweeps(at_instant, monkeypatch):
    from subscriptions import services

    instant = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)
    at_instant(instant)
    monkeypatch.setattr(services.timezone, "now", lambda: instant)
    trial = SubscriptionFactory(status="trialing", trial_end_date=date(2026, 4, 20),
                                plan_version__amount=Decimal("10"), start_date=date(2026, 4, 6))
    canceling = SubscriptionFactory(start_date=date(2026, 1, 1))
    subscription_cancel(subscription=canceling, on=date(2026, 4, 10), today=date(2026, 4, 10))
    assert activate_trials.delay().get() == 1
    assert apply_due_changes.delay().get() == 1
    assert apply_due_changes.delay().get() == 0
    trial.refresh_from_db()
    canceling.refresh_from_db()
    assert (trial.status, canceling.status) == ("active", "canceled")
