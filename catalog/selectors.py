from __future__ import annotations

from django.db.models import Count, Prefetch, QuerySet

from catalog.models import BillableMetric, Charge, Plan, PlanVersion
from common.errors import NotFoundError


def metric_get(code: str) -> BillableMetric:
    metric = BillableMetric.objects.filter(code=code).first()
    if metric is None:
        raise NotFoundError(f"Billable metric '{code}' not found.", fields={"billable_metric": ["not found"]})
    return metric


def metric_list() -> QuerySet[BillableMetric]:
    return BillableMetric.objects.order_by("code")


def plan_get(code: str) -> Plan:
    plan = Plan.objects.filter(code=code).first()
    if plan is None:
        raise NotFoundError(f"Plan '{code}' not found.", fields={"plan": ["not found"]})
    return plan


def plan_current_version(plan: Plan) -> PlanVersion:
    """The newest public version (what new subscriptions are sold); private overrides excluded."""
    version = (
        PlanVersion.objects.filter(plan=plan, customer__isnull=True)
        .select_related("plan")
        .prefetch_related(Prefetch("charges", queryset=Charge.objects.select_related("billable_metric")))
        .order_by("-version")
        .first()
    )
    if version is None:
        raise NotFoundError(f"Plan '{plan.code}' has no version.", fields={"plan": ["no version"]})
    return version


def plan_version_get(*, plan: Plan, version: int) -> PlanVersion:
    found = (
        PlanVersion.objects.filter(plan=plan, version=version)
        .select_related("plan", "customer")
        .prefetch_related(Prefetch("charges", queryset=Charge.objects.select_related("billable_metric")))
        .first()
    )
    if found is None:
        raise NotFoundError(f"Plan '{plan.code}' has no version {version}.", fields={"version": ["not found"]})
    return found


def plan_list() -> QuerySet[Plan]:
    return Plan.objects.order_by("code")


def plan_current_versions(plans: list[Plan]) -> dict[int, PlanVersion]:
    """{plan id: current public version} for many plans, in two queries (charges prefetched)."""
    versions = (
        PlanVersion.objects.filter(plan__in=plans, customer__isnull=True)
        .order_by("plan_id", "-version")
        .distinct("plan_id")
        .prefetch_related(Prefetch("charges", queryset=Charge.objects.select_related("billable_metric")))
    )
    plans_by_id = {p.pk: p for p in plans}
    out = {}
    for version in versions:
        version.plan = plans_by_id[version.plan_id]
        out[version.plan_id] = version
    return out


def plan_versions_with_subscription_counts(plan: Plan) -> QuerySet[PlanVersion]:
    return (
        PlanVersion.objects.filter(plan=plan)
        .select_related("customer", "based_on")
        .annotate(subscription_count=Count("subscriptions", distinct=True), charge_count=Count("charges", distinct=True))
        .order_by("-version")
    )


def plan_version_price_preview(*, version: PlanVersion, quantities: dict, event_values: dict | None = None,
                               event_counts: dict | None = None, seats: int = 1) -> dict:
    """What one period of `version` would cost for the given usage (admin "price preview").

    `quantities`, `event_counts`, `event_values` are keyed by charge id. Returns base fee, one
    RatedCharge per charge, the subtotal, the minimum-commitment true-up and the total."""
    from decimal import Decimal

    from catalog.rating import minimum_commitment_true_up, needs_event_values, rate_charge
    from common.money import quantize_money

    currency = version.plan.currency
    event_values = event_values or {}
    event_counts = event_counts or {}
    base = quantize_money(version.amount * seats, currency)
    lines = []
    for charge in version.charges.select_related("billable_metric").order_by("position", "pk"):
        values = event_values.get(charge.pk)
        if values is None and needs_event_values(model=charge.model, properties=charge.properties):
            values = []
        quantity = quantities.get(charge.pk, Decimal(0))
        if values is not None and charge.model == "percentage":
            quantity = sum(values, Decimal(0))
        rated = rate_charge(charge=charge, quantity=quantity, currency=currency,
                            event_count=event_counts.get(charge.pk, 0), event_values=values)
        lines.append({"charge": charge, "rated": rated})
    subtotal = base + sum((line["rated"].amount for line in lines), Decimal(0))
    true_up = minimum_commitment_true_up(minimum=version.minimum_commitment, subtotal=subtotal, currency=currency)
    return {"currency": currency, "base": base, "seats": seats, "lines": lines, "subtotal": subtotal,
            "true_up": true_up, "total": subtotal + true_up}
