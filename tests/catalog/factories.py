"""factory-boy factories for the catalog. Other apps' tests import these.

    metric = BillableMetricFactory()                      # count metric "metric_00001"
    version = PlanVersionFactory(plan__currency="EUR")    # plan + version 1, base amount 0
    ChargeFactory(plan_version=version, model="standard", properties={"unit_amount": "0.004"})
    ChargeFactory.graduated(plan_version=version)         # DESIGN.md tiers: 1–50 at 40, 51+ at 35

Properties passed to ChargeFactory are stored as given (use strings for decimals, as the API
stores them); use `catalog.services.plan_create` when validation should run.
"""

from decimal import Decimal

import factory

from catalog.models import BillableMetric, Charge, Plan, PlanVersion

DESIGN_TIERS = [
    {"up_to": 50, "unit_amount": "40", "flat_amount": "0"},
    {"up_to": None, "unit_amount": "35", "flat_amount": "0"},
]


class BillableMetricFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BillableMetric
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"metric_{n:05d}")
    name = factory.LazyAttribute(lambda o: o.code.replace("_", " ").title())
    aggregation = "count"
    field = ""

    class Params:
        summed = factory.Trait(aggregation="sum", field="amount")


class PlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Plan
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"plan_{n:05d}")
    name = factory.LazyAttribute(lambda o: o.code.replace("_", " ").title())
    currency = "USD"
    interval = "month"


class PlanVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PlanVersion

    plan = factory.SubFactory(PlanFactory)
    version = factory.LazyAttribute(
        lambda o: (PlanVersion.objects.filter(plan=o.plan).order_by("-version").values_list("version", flat=True).first() or 0) + 1
    )
    amount = Decimal("0")
    pay_in_advance = True
    trial_days = 0
    minimum_commitment = None
    customer = None
    based_on = None


class ChargeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Charge

    plan_version = factory.SubFactory(PlanVersionFactory)
    billable_metric = factory.SubFactory(BillableMetricFactory)
    model = "standard"
    properties = factory.LazyFunction(lambda: {"unit_amount": "1"})
    position = factory.Sequence(lambda n: n)

    @classmethod
    def graduated(cls, **kwargs) -> Charge:
        return cls(model="graduated", properties={"tiers": [dict(t) for t in DESIGN_TIERS]}, **kwargs)

    @classmethod
    def volume(cls, **kwargs) -> Charge:
        return cls(model="volume", properties={"tiers": [dict(t) for t in DESIGN_TIERS]}, **kwargs)
