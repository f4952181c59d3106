import pytest

from catalog.models import Charge
from tests.catalog.factories import ChargeFactory, PlanVersionFactory

pytestmark = pytest.mark.django_db


def test_factories_build_a_plan_with_charges():
    version = PlanVersionFactory(plan__currency="EUR")
    ChargeFactory(plan_version=version, properties={"unit_amount": "0.004"})
    ChargeFactory.graduated(plan_version=version)
    assert version.version == 1
    assert version.currency == "EUR"
    assert list(Charge.objects.filter(plan_version=version).values_list("model", flat=True)) == ["standard", "graduated"]
    second = PlanVersionFactory(plan=version.plan)
    assert second.version == 2
