"""Catalog writes: metrics, plans, versions and customer-specific overrides.

Versioning rule (DESIGN.md §3): a price change (base amount, pay in advance, trial days, minimum
commitment, charges) never edits a version; it adds the next version, which new subscriptions get.
Subscriptions keep the version they were sold. Name and description edits do not version.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Max

from catalog.models import Aggregation, BillableMetric, Charge, ChargeModel, Interval, Plan, PlanVersion
from catalog.selectors import plan_current_version
from catalog.validation import Errors, _normalize, code_check, money_places_check, parse_count, parse_price
from common.audit import actor_label, audit_record
from common.errors import ApplicationError, ConflictError
from common.money import is_valid_currency

PRICE_FIELDS = ("amount", "pay_in_advance", "trial_days", "minimum_commitment")


def _actor_user(actor):
    from django.contrib.auth import get_user_model

    return actor if isinstance(actor, get_user_model()) else None


def _audit(*, action: str, obj, actor, inputs: dict | None = None, message: str = "") -> None:
    audit_record(action=action, obj=obj, actor=actor_label(actor), actor_user=_actor_user(actor), inputs=inputs,
                 message=message)


# --- billable metrics ----------------------------------------------------------------------------

def billable_metric_create(*, code: str, name: str, aggregation: str, field: str = "", description: str = "",
                           actor=None) -> BillableMetric:
    field = (field or "").strip()
    errors = billable_metric_errors(code=code, name=name, aggregation=aggregation, field=field)
    errors.raise_if_any("Invalid billable metric.")
    try:
        with transaction.atomic():
            metric = BillableMetric.objects.create(code=code, name=name, aggregation=aggregation, field=field,
                                                   description=description or "")
            _audit(action="billable_metric.created", obj=metric, actor=actor,
                   inputs={"code": code, "aggregation": aggregation, "field": field})
    except IntegrityError as exc:
        raise ConflictError(f"Billable metric '{code}' already exists.", code="duplicate_code",
                            fields={"code": ["already exists"]}) from exc
    return metric


def billable_metric_errors(*, code: str, name: str, aggregation: str, field: str) -> Errors:
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
        plan = Plan.objects.select_for_update().get(pk=plan.pk)
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
        Plan.objects.select_for_update().get(pk=plan.pk)  # serializes version numbering
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
