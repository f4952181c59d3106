from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Prefetch, Q, QuerySet

from catalog.models import BillableMetric, Charge, Coupon, Plan, PlanVersion, TaxRate
from catalog.rating import minimum_commitment_true_up, needs_event_values, rate_charge
from catalog.taxes import EXEMPT_NOTE, REVERSE_CHARGE_NOTE, TaxDetermination, reverse_charge_applies
from common.errors import NotFoundError
from common.money import quantize_money


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


# --- taxes ---------------------------------------------------------------------------------------

def tax_rate_list() -> "QuerySet":
    return TaxRate.objects.order_by("country", "region", "name", "pk")


def _seller_country() -> str:
    return (getattr(settings, "SELLER", {}) or {}).get("country", "US")


def tax_rates_for_customer(*, customer, on) -> list:
    """Active rates valid on `on` for the customer's country: the country+region rates when the
    customer has a region and any exist (most specific wins), else the country-only rates.
    None for a tax-exempt customer, a reverse-charge B2B EU customer, or a customer without country."""
    return list(tax_determination_for_customer(customer=customer, on=on).rates)


def tax_determination_for_customer(*, customer, on):
    """The rates and the invoice note for `customer` on `on` (a date): exempt → no rates and
    EXEMPT_NOTE; reverse charge (B2B EU, other country than settings.SELLER["country"], default
    US) → no rates and REVERSE_CHARGE_NOTE; else `tax_rates_for_customer`'s rule."""
    if customer.tax_exempt:
        return TaxDetermination(rates=(), note=EXEMPT_NOTE, reason="exempt")
    if reverse_charge_applies(customer_country=customer.country, customer_tax_id=customer.tax_id,
                              seller_country=_seller_country()):
        return TaxDetermination(rates=(), note=REVERSE_CHARGE_NOTE, reason="reverse_charge")
    country = (customer.country or "").upper()
    if not country:
        return TaxDetermination(rates=(), reason="no_rate")
    valid = (TaxRate.objects.filter(country=country, active=True)
             .filter(Q(valid_from__isnull=True) | Q(valid_from__lte=on))
             .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=on)))
    region = (customer.region or "").strip()
    rates = list(valid.filter(region__iexact=region).order_by("name", "pk")) if region else []
    if not rates:
        rates = list(valid.filter(region="").order_by("name", "pk"))
    return TaxDetermination(rates=tuple(rates), reason="rates" if rates else "no_rate")


# --- coupons -------------------------------------------------------------------------------------

def coupon_get(code: str):
    coupon = Coupon.objects.filter(code=code).prefetch_related("applies_to_plans").first()
    if coupon is None:
        raise NotFoundError(f"Coupon '{code}' not found.", fields={"coupon": ["not found"]})
    return coupon


def coupon_list() -> "QuerySet":
    return Coupon.objects.prefetch_related("applies_to_plans").order_by("code")
