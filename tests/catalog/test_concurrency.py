"""Two connections add versions to the same plan at once: the plan row lock serializes the
numbering, so both succeed with distinct numbers (the unique constraint is the backstop)."""


import pytest

from catalog.models import PlanVersion
from catalog.services import plan_create, plan_update, plan_version_override_create
from catalog.selectors import plan_current_version
from tests.catalog.factories import BillableMetricFactory
from tests.customers.factories import CustomerFactory
from tests.race import race


@pytest.mark.django_db(transaction=True)
def test_concurrent_new_versions_get_distinct_numbers():
    BillableMetricFactory(code="calls")
    plan = plan_create(code="race", name="Race", currency="USD", interval="month", amount="1",
                       charges=[{"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "1"}}])
    customer = CustomerFactory()
    base = plan_current_version(plan)
    failures = race(
        lambda: plan_update(plan=plan, amount="2"),
        lambda: plan_update(plan=plan, trial_days=7),
        lambda: plan_version_override_create(base_version=base, customer=customer, amount="0.5"),
        barrier_timeout=10, join_timeout=30,
    ).errors

    assert failures == []
    assert sorted(PlanVersion.objects.filter(plan=plan).values_list("version", flat=True)) == [1, 2, 3, 4]
    assert PlanVersion.objects.filter(plan=plan, customer=customer).count() == 1
    assert all(v.charges.count() == 1 for v in PlanVersion.objects.filter(plan=plan))
