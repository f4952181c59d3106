"""Coupon redemptions: a catalog coupon applied to a customer (or one subscription) and used up by
invoices. Coupon definitions (kind, amounts, duration) stay in catalog; the one "coupon used up"
rule is `catalog.discounts.coupon_used_up`, shared with the totals preview (`invoicing.totals`).

Writes: `coupon_apply`, `coupon_remove`, `coupon_redemptions_consume`.
Reads: `coupon_redemptions_for_customer`, `coupon_redemptions_for_invoice`."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from catalog.discounts import coupon_used_up
from catalog.models import Coupon, CouponDuration, CouponKind
from catalog.validation import Errors
from common.audit import actor_label, audit_record
from common.errors import ConflictError
from common.locks import row_lock
from invoicing.models import CouponRedemption, CouponUsage

# The audit `object_type` of a redemption: its model label, and the label it had before the model
# moved from catalog to invoicing (events recorded earlier keep it).
REDEMPTION_OBJECT_TYPES = (CouponRedemption._meta.label_lower, "catalog.couponredemption")


def _audit(*, action: str, obj, actor, inputs: dict | None = None) -> None:
    user = actor if isinstance(actor, get_user_model()) else None
    audit_record(action=action, obj=obj, actor=actor_label(actor), actor_user=user, inputs=inputs)


# --- writes --------------------------------------------------------------------------------------

def coupon_apply(*, coupon, customer, subscription=None, on=None, actor=None):
    """Apply `coupon` to `customer` (every invoice) or to one of its subscriptions.

    400: a fixed coupon in another currency than the customer's, a subscription of another
    customer, a plan the coupon does not cover. 409: inactive coupon, past `redeem_by` (`on`,
    default today UTC), `max_redemptions` reached (counted under the coupon row lock), or the
    coupon already active on that customer/subscription."""
    on = on or timezone.now().date()
    with transaction.atomic():
        coupon = row_lock(Coupon, coupon.pk)  # serializes max_redemptions
        if not coupon.active:
            raise ConflictError(f"Coupon '{coupon.code}' is not active.", code="coupon_inactive",
                                fields={"coupon": ["inactive"]})
        if coupon.redeem_by is not None and on > coupon.redeem_by:
            raise ConflictError(f"Coupon '{coupon.code}' could be redeemed until {coupon.redeem_by}.",
                                code="coupon_expired", fields={"coupon": ["past redeem_by"]})
        if coupon.max_redemptions is not None and coupon.redemptions.count() >= coupon.max_redemptions:
            raise ConflictError(f"Coupon '{coupon.code}' reached its {coupon.max_redemptions} redemptions.",
                                code="coupon_max_redemptions", fields={"coupon": ["max redemptions reached"]})
        errors = Errors()
        if coupon.kind == CouponKind.FIXED and coupon.currency != customer.currency:
            errors.add("coupon", f"the coupon is in {coupon.currency}, the customer is billed in {customer.currency}.")
        if subscription is not None and subscription.customer_id != customer.pk:
            errors.add("subscription", "belongs to another customer.")
        plan_codes = {p.pk: p.code for p in coupon.applies_to_plans.all()}
        if subscription is not None and plan_codes:
            plan = subscription.plan_version.plan
            if plan.pk not in plan_codes:
                errors.add("subscription", f"plan '{plan.code}' is not one the coupon covers "
                                           f"({', '.join(sorted(plan_codes.values()))}).")
        errors.raise_if_any("Coupon not applicable.")
        # A customer-wide redemption covers every subscription's invoices: the same coupon active both
        # customer-wide and on a subscription would discount one invoice twice.
        overlapping = (Q(subscription__isnull=True) | Q(subscription=subscription)) if subscription else Q()
        active = CouponRedemption.objects.filter(overlapping, coupon=coupon, customer=customer,
                                                 removed_at__isnull=True, ended_at__isnull=True)
        if active.exists():
            raise ConflictError(f"Coupon '{coupon.code}' is already applied.", code="coupon_already_applied",
                                fields={"coupon": ["already applied"]})
        redemption = CouponRedemption.objects.create(coupon=coupon, customer=customer, subscription=subscription)
        _audit(action="coupon.applied", obj=redemption, actor=actor,
               inputs={"coupon": coupon.code, "customer": customer.external_id,
                       "subscription": subscription.external_id if subscription is not None else None, "on": on})
    return redemption


def coupon_remove(*, redemption, actor=None):
    """Stop a redemption discounting future invoices (finalized invoices keep their discount). 409 if already removed."""
    with transaction.atomic():
        redemption = row_lock(CouponRedemption, redemption.pk)
        if redemption.removed_at is not None:
            raise ConflictError("This coupon was already removed.", code="coupon_already_removed")
        redemption.removed_at = timezone.now()
        redemption.save(update_fields=["removed_at"])
        _audit(action="coupon.removed", obj=redemption, actor=actor,
               inputs={"coupon": redemption.coupon.code, "periods_applied": redemption.periods_applied})
    return redemption


def coupon_redemptions_consume(*, redemptions, invoice_id, discounts=(), actor=None, uses_period: bool = True) -> list:
    """Record that the invoice `invoice_id` used `redemptions` (the ones its discounts came from).

    Idempotent per invoice: a redemption already consumed by `invoice_id` is left alone (a
    CouponUsage row unique on (redemption, invoice_id)). Otherwise `periods_applied` goes up by
    one and the redemption ends (`ended_at`) once used up: a `once` coupon after one invoice, a
    `repeating` one after `duration_periods`; `forever` never ends. `discounts` (DiscountLines)
    records each coupon's amount on that invoice. Rows are locked in pk order. 409 if a redemption
    is no longer active (removed or used up) and has not been consumed by this invoice: compute
    the invoice from `coupon_redemptions_for_invoice(..., lock=True)` in the same transaction.

    Repeating coupons count billing periods, not invoices (DESIGN.md §3): an invoice that does not
    close a billing period (`uses_period=False`: an upgrade's or a cancellation's invoice inside a
    period, late usage, a manual invoice) is discounted and recorded but does not use a period. A
    `once` coupon is used up by the first invoice it discounts."""
    invoice_id = str(invoice_id)
    amounts = {d.coupon_id: d.amount for d in discounts}
    ids = sorted({r.pk for r in redemptions})
    out = []
    with transaction.atomic():
        locked = list(CouponRedemption.objects.select_for_update(of=("self",)).select_related("coupon")
                      .filter(pk__in=ids).order_by("pk"))
        used = set(CouponUsage.objects.filter(redemption__in=locked, invoice_id=invoice_id)
                   .values_list("redemption_id", flat=True))
        now = timezone.now()
        for redemption in locked:
            if redemption.pk in used:
                out.append(redemption)
                continue
            if not redemption.is_active:
                raise ConflictError(f"Coupon redemption {redemption.pk} ({redemption.coupon.code}) is no longer active.",
                                    code="coupon_redemption_inactive")
            CouponUsage.objects.create(redemption=redemption, invoice_id=invoice_id,
                                       amount=amounts.get(redemption.coupon_id))
            coupon = redemption.coupon
            fields = []
            if uses_period or coupon.duration == CouponDuration.ONCE:
                redemption.periods_applied += 1
                fields.append("periods_applied")
            if coupon_used_up(coupon, redemption.periods_applied):
                redemption.ended_at = now
                fields.append("ended_at")
            if fields:
                redemption.save(update_fields=fields)
            audit_record(action="coupon.consumed", obj=redemption, actor=actor_label(actor or "billing"),
                   rule=f"coupon duration {coupon.duration}",
                   inputs={"invoice_id": invoice_id, "coupon": coupon.code, "periods_applied": redemption.periods_applied,
                           "uses_period": "periods_applied" in fields,
                           "duration_periods": coupon.duration_periods, "amount": amounts.get(redemption.coupon_id),
                           "ended": "ended_at" in fields})
            out.append(redemption)
    return out


# --- reads ---------------------------------------------------------------------------------------

def coupon_redemptions_for_customer(*, customer) -> QuerySet:
    """Every redemption of `customer` (active, used up or removed), oldest first."""
    return (CouponRedemption.objects.filter(customer=customer)
            .select_related("coupon", "customer", "subscription").order_by("created_at", "pk"))


def coupon_redemptions_for_invoice(*, customer, currency: str, subscription=None, lock: bool = False) -> list:
    """The active redemptions that discount an invoice of `customer` in `currency` (for
    `subscription`, if the invoice is a subscription's), in application order (oldest first).

    Included: customer-wide redemptions and the ones on this subscription; a coupon limited to
    plans only when the subscription's plan is one of them; fixed coupons only in `currency`.
    Pass `[r.coupon for r in result]` to the discount engine and the result to
    `coupon_redemptions_consume` once the invoice exists. `lock=True` locks the rows (call inside
    the invoice transaction so a concurrent removal waits)."""
    qs = CouponRedemption.objects.filter(customer=customer, removed_at__isnull=True, ended_at__isnull=True)
    qs = qs.filter(Q(subscription__isnull=True) | Q(subscription=subscription)) if subscription is not None \
        else qs.filter(subscription__isnull=True)
    if lock:
        ids = list(qs.select_for_update().order_by("pk").values_list("pk", flat=True))
        qs = CouponRedemption.objects.filter(pk__in=ids)
    plan_id = subscription.plan_version.plan_id if subscription is not None else None
    out = []
    for redemption in qs.select_related("coupon").prefetch_related("coupon__applies_to_plans").order_by("created_at", "pk"):
        coupon = redemption.coupon
        plan_ids = {p.pk for p in coupon.applies_to_plans.all()}
        if plan_ids and plan_id not in plan_ids:
            continue
        if coupon.kind == "fixed" and coupon.currency != currency:
            continue
        out.append(redemption)
    return out
