"""Factories for subscriptions. The plan version (tests.catalog.factories) defaults to a monthly
in-advance base fee of 100 in the customer's currency, so the currency rule holds by default.

    sub = SubscriptionFactory(plan_version__amount=Decimal("100"), plan_version__plan__interval="month",
                              start_date=date(2026, 1, 1))
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import factory

from subscriptions.models import BillingTime, ChangeKind, Subscription, SubscriptionChange, SubscriptionStatus
from tests.catalog.factories import PlanVersionFactory
from tests.customers.factories import CustomerFactory


class SubscriptionFactory(factory.django.DjangoModelFactory):
    """An active subscription with its `created` ledger row (so plan_segments can reconstruct it)."""

    class Meta:
        model = Subscription
        skip_postgeneration_save = True

    external_id = factory.Sequence(lambda n: f"sub_{n:05d}")
    customer = factory.SubFactory(CustomerFactory)
    plan_version = factory.SubFactory(
        PlanVersionFactory, amount=Decimal("100"), plan__currency=factory.SelfAttribute("...customer.currency")
    )
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
