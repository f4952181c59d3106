"""Catalog writes: metrics, plans, versions and customer-specific overrides.

Versioning rule (DESIGN.md §3): a price change (base amount, pay in advance, trial days, minimum
commitment, charges) never edits a version; it adds the next version, which new subscriptions get.
Subscriptions keep the version they were sold. Name and description edits do not version.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Max

from catalog.models import (NUMERIC_AGGREGATIONS, Aggregation, BillableMetric, Charge, ChargeModel, Coupon,
                            CouponDuration, CouponKind, Interval, Plan, PlanVersion,
                            TaxRate)
from catalog.selectors import plan_current_version
from catalog.validation import Errors, _normalize, code_check, money_places_check, parse_count, parse_price
from common.audit import actor_label, audit_record
from common.errors import ApplicationError, ConflictError
from common.locks import row_lock
from common.money import is_valid_currency
from customers.countries import is_valid_country

PRICE_FIELDS = ("amount", "pay_in_advance", "trial_days", "minimum_commitment")


def _actor_user(actor):
    return actor if isinstance(actor, get_user_model()) else None


def _audit(*, action: str, obj, actor, inputs: dict | None = None, message: str = "") -> None:
    audit_record(action=action, obj=obj, actor=actor_label(actor), actor_user=_actor_user(actor), inputs=inputs,
                 message=message)


# --- billable metrics ----------------------------------------------------------------------------

def billable_metric_create(*, code: str, name: str, aggregation: str, field: str = "", description: str = "",
                           allow_negative: bool = False, actor=None) -> BillableMetric:
    field = (field or "").strip()
    errors = billable_metric_errors(code=code, name=name, aggregation=aggregation, field=field,
                                    allow_negative=allow_negative)
    errors.raise_if_any("Invalid billable metric.")
    try:
        with transaction.atomic():
            metric = BillableMetric.objects.create(code=code, name=name, aggregation=aggregation, field=field,
                                                   description=description or "", allow_negative=allow_negative)
            _audit(action="billable_metric.created", obj=metric, actor=actor,
                   inputs={"code": code, "aggregation": aggregation, "field": field, "allow_negative": allow_negative})
    except IntegrityError as exc:
        raise ConflictError(f"Billable metric '{code}' already exists.", code="duplicate_code",
                            fields={"code": ["already exists"]}) from exc
    return metric


def billable_metric_errors(*, code: str, name: str, aggregation: str, field: str, allow_negative: bool = False) -> Errors:
    """The rules a metric definition must satisfy (shared by the service and the admin form)."""
    errors = Errors()
    code_check(errors, "code", code)
    if not name:
        errors.add("name", "This field is required.")
    if aggregation not in Aggregation.values:
        errors.add("aggregation", f"'{aggregation}' is not one of {', '.join(Aggregation.values)}.")
    elif aggregation == Aggregation.COUNT and field:
        errors.add("field", "a count metric counts events and takes no field.")
    elif aggregation != Aggregation.COUNT and not field:
        errors.add("field", f"a {aggregation} metric needs the event property to aggregate.")
    if allow_negative and aggregation not in NUMERIC_AGGREGATIONS:
        errors.add("allow_negative", f"only a numeric metric ({', '.join(sorted(NUMERIC_AGGREGATIONS))}) has values.")
    return errors


# --- charges -------------------------------------------------------------------------------------

def _metric_ref(value) -> str:
    return value.code if isinstance(value, BillableMetric) else str(value or "")


def charges_validate(*, charges: Iterable[dict], currency: str, errors: Errors, path: str = "charges") -> list[dict]:
    """Resolve metrics and normalize each charge: [{billable_metric: BillableMetric, model, properties, ...}]."""
    charges = list(charges or [])
    codes = {_metric_ref(c.get("billable_metric")) for c in charges if isinstance(c, dict)}
    metrics = {m.code: m for m in BillableMetric.objects.filter(code__in=codes)}
    out = []
    for index, charge in enumerate(charges):
        at = f"{path}[{index}]"
        if not isinstance(charge, dict):
            errors.add(at, "must be an object.")
            continue
        code = _metric_ref(charge.get("billable_metric"))
        metric = metrics.get(code)
        if not code:
            errors.add(f"{at}.billable_metric", "This field is required.")
        elif metric is None:
            errors.add(f"{at}.billable_metric", f"no billable metric '{code}'.")
        model = charge.get("model")
        if charge.get("currency") not in (None, "") and str(charge["currency"]).upper() != currency:
            errors.add(f"{at}.currency",
                       f"Charges are priced in the plan's currency ({currency}); '{charge['currency']}' does not match.")
        properties = _normalize(errors, model=model, properties=charge.get("properties"), currency=currency,
                                path=f"{at}.properties")
        if metric is not None and model == ChargeModel.PERCENTAGE and metric.aggregation != Aggregation.SUM:
            errors.add(f"{at}.billable_metric",
                       f"a percentage charge takes a percentage of a sum; '{code}' is a {metric.aggregation} metric.")
        out.append({
            "billable_metric": metric, "model": model, "properties": properties,
            "invoice_display_name": charge.get("invoice_display_name") or "",
        })
    return out


def _charges_create(*, version: PlanVersion, charges: list[dict]) -> None:
    Charge.objects.bulk_create([
        Charge(plan_version=version, billable_metric=c["billable_metric"], model=c["model"], properties=c["properties"],
               position=position, invoice_display_name=c.get("invoice_display_name", ""))
        for position, c in enumerate(charges)
    ])


def _charges_snapshot(version: PlanVersion) -> list[dict]:
    return [
        {"billable_metric": c.billable_metric.code, "model": c.model, "properties": c.properties,
         "invoice_display_name": c.invoice_display_name}
        for c in version.charges.select_related("billable_metric").order_by("position", "pk")
    ]


def _charges_comparable(charges: list[dict]) -> list[tuple]:
    return [(_metric_ref(c["billable_metric"]), c["model"], c["properties"], c.get("invoice_display_name", ""))
            for c in charges]


# --- version fields ------------------------------------------------------------------------------

def _version_fields(*, errors: Errors, currency: str, amount=None, pay_in_advance=None, trial_days=None,
                    minimum_commitment=None, minimum_given: bool = False) -> dict:
    fields: dict = {}
    if amount is not None:
        fields["amount"] = parse_price(errors, "amount", amount)
    if pay_in_advance is not None:
        if not isinstance(pay_in_advance, bool):
            errors.add("pay_in_advance", "must be true or false.")
        fields["pay_in_advance"] = bool(pay_in_advance)
    if trial_days is not None:
        fields["trial_days"] = parse_count(errors, "trial_days", trial_days)
    if minimum_given:
        value = parse_price(errors, "minimum_commitment", minimum_commitment, required=False, allow_null=True)
        money_places_check(errors, "minimum_commitment", value, currency)
        fields["minimum_commitment"] = value
    return fields


def _next_version_number(plan: Plan) -> int:
    return (PlanVersion.objects.filter(plan=plan).aggregate(n=Max("version"))["n"] or 0) + 1


# --- plans ---------------------------------------------------------------------------------------

def plan_create(*, code: str, name: str, currency: str, interval: str, amount: Decimal | str = Decimal(0),
                pay_in_advance: bool = True, trial_days: int = 0, minimum_commitment: Decimal | str | None = None,
                charges: Iterable[dict] = (), description: str = "", actor=None) -> Plan:
    """Create a plan with version 1 and its charges, in one transaction.

    `charges`: [{"billable_metric": code or BillableMetric, "model": ..., "properties": {...},
    "invoice_display_name": optional}]."""
    errors = Errors()
    code_check(errors, "code", code)
    if not name:
        errors.add("name", "This field is required.")
    currency = (currency or "").upper()
    if not is_valid_currency(currency):
        errors.add("currency", f"'{currency}' is not an ISO 4217 currency code.")
    if interval not in Interval.values:
        errors.add("interval", f"'{interval}' is not one of {', '.join(Interval.values)}.")
    fields = _version_fields(errors=errors, currency=currency if is_valid_currency(currency) else "USD",
                             amount=Decimal(0) if amount is None else amount, pay_in_advance=pay_in_advance,
                             trial_days=trial_days, minimum_commitment=minimum_commitment, minimum_given=True)
    normalized = charges_validate(charges=charges, currency=currency, errors=errors)
    errors.raise_if_any("Invalid plan.")
    try:
        with transaction.atomic():
            plan = Plan.objects.create(code=code, name=name, description=description or "", currency=currency,
                                       interval=interval)
            version = PlanVersion.objects.create(plan=plan, version=1, **fields)
            _charges_create(version=version, charges=normalized)
            _audit(action="plan.created", obj=plan, actor=actor, inputs={"code": code, "currency": currency})
            _audit(action="plan_version.created", obj=version, actor=actor,
                   inputs={"plan": code, "version": 1, **_version_inputs(version, normalized)})
    except IntegrityError as exc:
        raise ConflictError(f"Plan '{code}' already exists.", code="duplicate_code",
                            fields={"code": ["already exists"]}) from exc
    return plan


_UNSET = object()


def plan_update(*, plan: Plan, actor=None, name: str | None = None, description: str | None = None,
                currency: str | None = None, interval: str | None = None, amount=None, pay_in_advance=None,
                trial_days=None, minimum_commitment=_UNSET, charges: Iterable[dict] | None = None) -> Plan:
    """Edit a plan. Name/description change in place; any price change adds a new version that
    copies the current one and applies the changes (`charges`, when given, replaces the list).
    Currency and interval are fixed: a different one is a new plan (409)."""
    with transaction.atomic():
        plan = row_lock(Plan, plan.pk)
        if currency is not None and currency.upper() != plan.currency:
            raise ConflictError("A plan's currency cannot change; create a new plan.", code="plan_currency_locked",
                                fields={"currency": ["cannot change"]})
        if interval is not None and interval != plan.interval:
            raise ConflictError("A plan's interval cannot change; create a new plan.", code="plan_interval_locked",
                                fields={"interval": ["cannot change"]})
        current = plan_current_version(plan)
        errors = Errors()
        fields = _version_fields(errors=errors, currency=plan.currency, amount=amount, pay_in_advance=pay_in_advance,
                                 trial_days=trial_days, minimum_commitment=None if minimum_commitment is _UNSET else minimum_commitment,
                                 minimum_given=minimum_commitment is not _UNSET)
        normalized = None if charges is None else charges_validate(charges=charges, currency=plan.currency, errors=errors)
        if name is not None and not name:
            errors.add("name", "This field may not be blank.")
        errors.raise_if_any("Invalid plan.")

        changed_identity = []
        for attr, value in (("name", name), ("description", description)):
            if value is not None and getattr(plan, attr) != value:
                setattr(plan, attr, value)
                changed_identity.append(attr)
        if changed_identity:
            plan.save(update_fields=[*changed_identity, "updated_at"])
            _audit(action="plan.updated", obj=plan, actor=actor, inputs={"fields": changed_identity})

        price_changes = {k: v for k, v in fields.items() if getattr(current, k) != v}
        old_charges = _charges_snapshot(current)
        charges_changed = normalized is not None and _charges_comparable(normalized) != _charges_comparable(old_charges)
        if price_changes or charges_changed:
            new_fields = {k: getattr(current, k) for k in PRICE_FIELDS} | price_changes
            version = PlanVersion.objects.create(plan=plan, version=_next_version_number(plan), based_on=current,
                                                 **new_fields)
            new_charges = normalized if charges_changed else _resolve_snapshot(old_charges)
            _charges_create(version=version, charges=new_charges)
            _audit(action="plan_version.created", obj=version, actor=actor,
                   inputs={"plan": plan.code, "version": version.version, "previous_version": current.version,
                           "changed": sorted(price_changes) + (["charges"] if charges_changed else []),
                           **_version_inputs(version, new_charges)})
    return plan


def plan_version_override_create(*, base_version: PlanVersion, customer, amount=None, minimum_commitment=_UNSET,
                                 charges: Iterable[dict] | None = None, actor=None) -> PlanVersion:
    """A private version for one customer (customer-specific prices), derived from `base_version`.

    Unspecified prices and charges are copied from the base. Subscribe the customer to the returned
    version. `minimum_commitment=None` removes the commitment; leave it out to keep the base's."""
    if base_version.customer_id and base_version.customer_id != customer.pk:
        raise ApplicationError("That version is private to another customer.", fields={"base_version": ["private"]})
    plan = base_version.plan
    errors = Errors()
    if customer.currency != plan.currency:
        errors.add("customer", f"customer is billed in {customer.currency}, the plan in {plan.currency}.")
    fields = _version_fields(errors=errors, currency=plan.currency, amount=amount,
                             minimum_commitment=None if minimum_commitment is _UNSET else minimum_commitment,
                             minimum_given=minimum_commitment is not _UNSET)
    normalized = None if charges is None else charges_validate(charges=charges, currency=plan.currency, errors=errors)
    errors.raise_if_any("Invalid price override.")
    with transaction.atomic():
        row_lock(Plan, plan.pk)  # serializes version numbering
        new_fields = {k: getattr(base_version, k) for k in PRICE_FIELDS} | fields
        version = PlanVersion.objects.create(plan=plan, version=_next_version_number(plan), customer=customer,
                                             based_on=base_version, **new_fields)
        new_charges = normalized if normalized is not None else _resolve_snapshot(_charges_snapshot(base_version))
        _charges_create(version=version, charges=new_charges)
        _audit(action="plan_version.override_created", obj=version, actor=actor,
               inputs={"plan": plan.code, "version": version.version, "based_on": base_version.version,
                       "customer": customer.external_id, "overridden": sorted(fields) + (["charges"] if normalized is not None else []),
                       **_version_inputs(version, new_charges)})
    return version


def _resolve_snapshot(snapshot: list[dict]) -> list[dict]:
    metrics = {m.code: m for m in BillableMetric.objects.filter(code__in=[c["billable_metric"] for c in snapshot])}
    return [{**c, "billable_metric": metrics[c["billable_metric"]]} for c in snapshot]


def _version_inputs(version: PlanVersion, charges: list[dict]) -> dict:
    return {
        "amount": version.amount, "pay_in_advance": version.pay_in_advance, "trial_days": version.trial_days,
        "minimum_commitment": version.minimum_commitment,
        "charges": [{"billable_metric": _metric_ref(c["billable_metric"]), "model": c["model"],
                     "properties": c["properties"]} for c in charges],
    }


# --- taxes ---------------------------------------------------------------------------------------

def _percent(errors: Errors, path: str, value, *, allow_zero: bool) -> Decimal | None:
    number = parse_price(errors, path, value, max_places=4)
    if number is None:
        return None
    if number > 100 or (number == 0 and not allow_zero):
        errors.add(path, "must be between 0 and 100." if allow_zero else "must be more than 0 and at most 100.")
        return None
    return number


def tax_rate_create(*, name: str, country: str, rate, region: str = "", active: bool = True, valid_from=None,
                    valid_to=None, actor=None):
    errors = Errors()
    if not name:
        errors.add("name", "This field is required.")
    country = (country or "").upper()
    if not is_valid_country(country):
        errors.add("country", f"'{country}' is not an ISO 3166-1 alpha-2 country code.")
    percent = _percent(errors, "rate", rate, allow_zero=True)
    if valid_from and valid_to and valid_to <= valid_from:
        errors.add("valid_to", "must be after valid_from (it is the first day no longer valid).")
    errors.raise_if_any("Invalid tax rate.")
    with transaction.atomic():
        tax_rate = TaxRate.objects.create(name=name, country=country, region=(region or "").strip(), rate=percent,
                                          active=active, valid_from=valid_from, valid_to=valid_to)
        _audit(action="tax_rate.created", obj=tax_rate, actor=actor,
               inputs={"country": country, "region": tax_rate.region, "rate": percent,
                       "valid_from": valid_from, "valid_to": valid_to})
    return tax_rate


def tax_rate_update(*, tax_rate, actor=None, name: str | None = None, active: bool | None = None,
                    valid_to=_UNSET):
    """Name, active and the end of validity change; the rate, country and region never do (they
    taxed invoices): end this rate and create a new one instead."""
    with transaction.atomic():
        tax_rate = row_lock(TaxRate, tax_rate.pk)
        changed = {}
        if name is not None and name != tax_rate.name:
            if not name:
                raise ApplicationError("name may not be blank.", fields={"name": ["blank"]})
            changed["name"] = name
        if active is not None and active != tax_rate.active:
            changed["active"] = active
        if valid_to is not _UNSET and valid_to != tax_rate.valid_to:
            if valid_to and tax_rate.valid_from and valid_to <= tax_rate.valid_from:
                raise ApplicationError("valid_to must be after valid_from.", fields={"valid_to": ["before valid_from"]})
            changed["valid_to"] = valid_to
        if changed:
            for attr, value in changed.items():
                setattr(tax_rate, attr, value)
            tax_rate.save(update_fields=[*changed, "updated_at"])
            _audit(action="tax_rate.updated", obj=tax_rate, actor=actor, inputs=changed)
    return tax_rate


# --- coupons -------------------------------------------------------------------------------------

def _resolve_plans(errors: Errors, plans) -> list[Plan]:
    refs = list(plans or [])
    codes = [p.code if isinstance(p, Plan) else str(p) for p in refs]
    found = {p.code: p for p in Plan.objects.filter(code__in=codes)}
    for code in codes:
        if code not in found:
            errors.add("applies_to_plans", f"no plan '{code}'.")
    return [found[c] for c in codes if c in found]


def coupon_create(*, code: str, name: str, kind: str, amount_off=None, currency: str = "", percent_off=None,
                  duration: str = "once", duration_periods: int | None = None, applies_to_plans=(),
                  redeem_by=None, max_redemptions: int | None = None, actor=None):
    """Create a coupon. Fixed: `amount_off` (> 0, at most the currency's decimals) + `currency`;
    percent: `percent_off` in (0, 100] with at most 4 decimals. `repeating` needs `duration_periods`
    ≥ 1. `applies_to_plans`: plan codes or Plans (empty = every plan); a fixed coupon's plans must
    be priced in its currency. 409 if the code exists."""
    errors = Errors()
    code_check(errors, "code", code)
    if not name:
        errors.add("name", "This field is required.")
    currency = (currency or "").upper()
    amount, percent = None, None
    if kind == CouponKind.FIXED:
        if not is_valid_currency(currency):
            errors.add("currency", "a fixed coupon needs an ISO 4217 currency.")
        amount = parse_price(errors, "amount_off", amount_off, max_places=4)
        if amount is not None and amount == 0:
            errors.add("amount_off", "must be more than 0.")
        if amount is not None and is_valid_currency(currency):
            money_places_check(errors, "amount_off", amount, currency)
        if percent_off not in (None, ""):
            errors.add("percent_off", "a fixed coupon takes amount_off, not percent_off.")
    elif kind == CouponKind.PERCENT:
        percent = _percent(errors, "percent_off", percent_off, allow_zero=False)
        if amount_off not in (None, ""):
            errors.add("amount_off", "a percent coupon takes percent_off, not amount_off.")
        if currency:
            errors.add("currency", "a percent coupon has no currency.")
    else:
        errors.add("kind", f"'{kind}' is not one of {', '.join(CouponKind.values)}.")
    if duration not in CouponDuration.values:
        errors.add("duration", f"'{duration}' is not one of {', '.join(CouponDuration.values)}.")
    elif duration == CouponDuration.REPEATING:
        periods = parse_count(errors, "duration_periods", duration_periods, minimum=1)
        duration_periods = periods
    elif duration_periods is not None:
        errors.add("duration_periods", f"only repeating coupons take duration_periods (this one is {duration}).")
    if max_redemptions is not None:
        max_redemptions = parse_count(errors, "max_redemptions", max_redemptions, minimum=1)
    plans = _resolve_plans(errors, applies_to_plans)
    if kind == CouponKind.FIXED and is_valid_currency(currency):
        for plan in plans:
            if plan.currency != currency:
                errors.add("applies_to_plans", f"plan '{plan.code}' is priced in {plan.currency}, the coupon in {currency}.")
    errors.raise_if_any("Invalid coupon.")
    try:
        with transaction.atomic():
            coupon = Coupon.objects.create(code=code, name=name, kind=kind, amount_off=amount, currency=currency,
                                           percent_off=percent, duration=duration,
                                           duration_periods=duration_periods if duration == "repeating" else None,
                                           redeem_by=redeem_by, max_redemptions=max_redemptions)
            if plans:
                coupon.applies_to_plans.set(plans)
            _audit(action="coupon.created", obj=coupon, actor=actor,
                   inputs={"code": code, "kind": kind, "amount_off": amount, "currency": currency,
                           "percent_off": percent, "duration": duration, "duration_periods": coupon.duration_periods,
                           "applies_to_plans": [p.code for p in plans], "redeem_by": redeem_by,
                           "max_redemptions": max_redemptions})
    except IntegrityError as exc:
        raise ConflictError(f"Coupon '{code}' already exists.", code="duplicate_code",
                            fields={"code": ["already exists"]}) from exc
    return coupon


def coupon_update(*, coupon, actor=None, name: str | None = None, active: bool | None = None, redeem_by=_UNSET,
                  max_redemptions=_UNSET):
    """Only the name, active flag, redeem_by and max_redemptions change; amounts never do."""
    with transaction.atomic():
        coupon = row_lock(Coupon, coupon.pk)
        changed = {}
        if name is not None and name != coupon.name:
            if not name:
                raise ApplicationError("name may not be blank.", fields={"name": ["blank"]})
            changed["name"] = name
        if active is not None and active != coupon.active:
            changed["active"] = active
        if redeem_by is not _UNSET and redeem_by != coupon.redeem_by:
            changed["redeem_by"] = redeem_by
        if max_redemptions is not _UNSET and max_redemptions != coupon.max_redemptions:
            if max_redemptions is not None and max_redemptions < coupon.redemptions.count():
                raise ConflictError("max_redemptions is below the redemptions already made.",
                                    code="max_redemptions_too_low", fields={"max_redemptions": ["too low"]})
            if max_redemptions is not None and max_redemptions < 1:
                raise ApplicationError("max_redemptions must be at least 1.", fields={"max_redemptions": ["too low"]})
            changed["max_redemptions"] = max_redemptions
        if changed:
            for attr, value in changed.items():
                setattr(coupon, attr, value)
            coupon.save(update_fields=[*changed, "updated_at"])
            _audit(action="coupon.updated", obj=coupon, actor=actor, inputs=changed)
    return coupon
