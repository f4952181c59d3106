from datetime import date

import pytest

from tests.catalog.factories import BillableMetricFactory, ChargeFactory
from tests.customers.factories import CustomerFactory
from tests.subscriptions.factories import SubscriptionFactory


@pytest.fixture
def make_metric(db):
    def make(code: str, aggregation: str = "count", field: str = ""):
        return BillableMetricFactory(code=code, aggregation=aggregation, field=field)

    return make


@pytest.fixture
def make_subscription(db):
    """A subscription whose plan version charges each given metric (standard, 1 per unit)."""

    def make(*metrics, customer=None, start_date=date(2026, 1, 1), **kwargs):
        customer = customer or CustomerFactory()
        sub = SubscriptionFactory(customer=customer, start_date=start_date, **kwargs)
        for metric in metrics:
            ChargeFactory(plan_version=sub.plan_version, billable_metric=metric, model="standard",
                          properties={"unit_amount": "1"})
        return sub

    return make


@pytest.fixture
def api_calls(make_metric, make_subscription):
    """A customer with one subscription charging `api_calls` (count) and `gb` (sum of `gb`)."""
    calls = make_metric("api_calls")
    gb = make_metric("storage_gb", "sum", "gb")
    sub = make_subscription(calls, gb, customer=CustomerFactory(external_id="acme"), external_id="sub_acme")
    return sub



@pytest.fixture(autouse=True)
def _fresh_partition_cache():
    """Partitions made inside a rolled-back test transaction vanish; start each test uncached."""
    from usage.partitioning import forget_known_partitions

    forget_known_partitions()
    yield
    forget_known_partitions()
