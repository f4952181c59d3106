from datetime import date
from decimal import Decimal

import pytest

from tests.subscriptions.factories import SubscriptionFactory

pytestmark = pytest.mark.django_db


def test_factory_builds_consistent_subscription():
    sub = SubscriptionFactory(customer__currency="EUR", plan_version__amount=Decimal("300"), plan_version__plan__interval="quarter")
    assert sub.currency == "EUR"
    assert sub.interval == "quarter"
    assert sub.plan_version.version == 1
    assert sub.start_date == date(2026, 1, 1)
    change = sub.changes.get()
    assert (change.kind, change.to_plan_version, change.to_quantity) == ("created", sub.plan_version, 1)
