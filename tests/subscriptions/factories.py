"""Factories for subscriptions (and, until tests/catalog/factories.py exists, the minimal plan rows
they need). The plan's currency follows the customer's, so the currency rule holds by default.

    sub = SubscriptionFactory(plan_version__amount=Decimal("100"), plan_version__plan__interval="month",
                              start_date=date(2026, 1, 1))
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import factory

from catalog.models import Plan, PlanVersion
from subscriptions.models import BillingTime, ChangeKind, Subscription, SubscriptionChange, SubscriptionStatus
from tests.customers.factories import CustomerFactory


class SubsPlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Plan
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"plan_{n:05d}")
    name = factory.LazyAttribute(lambda o: o.code.replace("_", " ").title())
    currency = "USD"
    interval = "month"


class SubsPlanVersionFactory(factory.django.DjangoModelFactory):
    """A public plan version (customer null). Version numbers count up per plan."""

    class Meta:
        model = PlanVersion

    plan = factory.SubFactory(SubsPlanFactory)
    version = factory.LazyAttribute(lambda o: (o.plan.versions.order_by("-version").values_list("version", flat=True).first() or 0) + 1)
    amount = Decimal("100")
    pay_in_advance = True
    trial_days = 0
    minimum_commitment = None


class SubscriptionFactory(factory.django.DjangoModelFactory):
    """An active subscription with its `created` ledger row (so plan_segments can reconstruct it)."""

    class Meta:
        model = Subscription
        skip_postgeneration_save = True

    external_id = factory.Sequence(lambda n: f"sub_{n:05d}")
    customer = factory.SubFactory(CustomerFactory)
    plan_version = factory.SubFactory(SubsPlanVersionFactory, plan__currency=factory.SelfAttribute("...customer.currency"))
    quantity = 1
    billing_time = BillingTime.CALENDAR
    status = SubscriptionStatus.ACTIVE
    start_date = date(2026, 1, 1)

    @factory.post_generation
    def ledger(obj, create, extracted, **kwargs):
        if not create or extracted is False:
            return
        SubscriptionChange.objects.create(
            subscription=obj, kind=ChangeKind.CREATED, effective_date=obj.start_date, applied_at=obj.created_at,
            to_plan_version=obj.plan_version, to_quantity=obj.quantity, to_status=obj.status, actor="factory",
        )
