"""Two plan changes on one subscription at once, from two threads with their own database
connections: the row lock serializes them, so the ledger chains and the proration nets out."""

import time
from datetime import date
from decimal import Decimal

import pytest

from subscriptions import services
from subscriptions.models import ProrationItem, Subscription, SubscriptionChange
from tests.catalog.factories import PlanVersionFactory
from tests.race import race
from tests.subscriptions.factories import SubscriptionFactory

D = date


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_plan_changes_leave_one_consistent_result(monkeypatch):
    basic = PlanVersionFactory(plan__code="basic", amount=Decimal("100"))
    premium = PlanVersionFactory(plan__code="premium", amount=Decimal("300"))
    ultra = PlanVersionFactory(plan__code="ultra", amount=Decimal("900"))
    sub = SubscriptionFactory(plan_version=basic, start_date=D(2026, 1, 1))

    # Widen the race: each service holds the row lock a little while before writing.
    real_resolve = services._resolve_plan_version

    def slow_resolve(**kwargs):
        time.sleep(0.3)
        return real_resolve(**kwargs)

    monkeypatch.setattr(services, "_resolve_plan_version", slow_resolve)
    def change_to(code):
        return services.subscription_change_plan(
            subscription=Subscription.objects.get(pk=sub.pk), plan_code=code, effective="immediately",
            on=D(2026, 4, 16), today=D(2026, 4, 16))

    codes = ("premium", "ultra")
    started = time.monotonic()
    outcomes = dict(zip(codes, race(*[lambda code=code: change_to(code) for code in codes], join_timeout=30).outcomes))
    assert all(not isinstance(o, Exception) for o in outcomes.values()), outcomes
    assert time.monotonic() - started >= 0.6  # the second waited for the first's lock

    sub.refresh_from_db()
    changes = list(SubscriptionChange.objects.filter(subscription=sub, kind="plan").order_by("pk"))
    assert len(changes) == 2
    first, second = changes
    assert first.from_plan_version == basic
    assert second.from_plan_version == first.to_plan_version  # chained, not both from basic
    assert sub.plan_version == second.to_plan_version
    assert {first.to_plan_version, second.to_plan_version} == {premium, ultra}
    # credit basic −50, then for each step credit the old and charge the new over 15/30 days:
    # the net is −50 + final/2 either way.
    amounts = list(ProrationItem.objects.filter(subscription=sub).values_list("amount", flat=True))
    assert len(amounts) == 4
    assert sum(amounts) == Decimal("-50.00") + sub.plan_version.amount / 2
