"""Catalog admin for finance staff. Thin: every write goes through catalog.services.

- Plans list their versions with the number of subscriptions on each.
- A version is never edited: "New version from this one" opens the add form prefilled with its
  prices and charges; saving calls `plan_update` (public) or `plan_version_override_create`
  (when a customer is chosen: a private price for that customer).
- Charge properties are edited as pretty-printed JSON, validated exactly like the API, and shown
  as a readable price summary.
- "Price preview" rates a version for quantities typed in (catalog.rating via a selector).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Max, Q
from django.forms.models import BaseInlineFormSet
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin

from catalog.models import BillableMetric, Charge, Plan, PlanVersion
from catalog.rating import RatingError, format_price
from catalog.selectors import plan_current_version, plan_version_price_preview
from catalog.services import (billable_metric_create, billable_metric_errors, charges_validate, plan_create, plan_update,
                              plan_version_override_create)
from catalog.validation import Errors, code_check, money_places_check
from common.admin_mixins import NoDeleteAdminMixin, ReadOnlyInlineMixin
from common.admin_tables import PropertiesTextarea, charge_properties_table, money_of, percent_of

VERSION_AMOUNT, VERSION_MINIMUM = money_of("amount", "plan.currency"), money_of("minimum_commitment", "plan.currency")
TAX_RATE = percent_of("rate")
COUPON_AMOUNT, COUPON_PERCENT = money_of("amount_off", "currency"), percent_of("percent_off")
from common.errors import ApplicationError, NotFoundError
from common.money import format_money, parse_decimal

PROPERTIES_HELP = (
    'JSON. standard: {"unit_amount": "0.004"} · package: {"package_size": 1000, "amount": "5.00", "free_units": 0} · '
    'graduated / volume: {"tiers": [{"up_to": 50, "unit_amount": "40", "flat_amount": "0"}, '
    '{"up_to": null, "unit_amount": "35", "flat_amount": "0"}]} · percentage: {"rate": "2.9", "fixed_amount": "0.30", '
    '"free_units": 0, "min_per_transaction": null, "max_per_transaction": null}'
)


def pricing_summary(charge: Charge, currency: str) -> str:
    """A readable one-glance description of a charge's prices."""
    p = charge.properties or {}

    def price(key, default="0"):
        value = parse_decimal(p.get(key, default))
        return format_price(value, currency) if value is not None else str(p.get(key))

    if charge.model == "standard":
        return f"{price('unit_amount')} per unit"
    if charge.model == "package":
        text = f"{price('amount')} per {p.get('package_size')} units (each started package)"
        return text + (f", first {p['free_units']} free" if p.get("free_units") else "")
    if charge.model in ("graduated", "volume"):
        rows, low = [], Decimal(0)
        for tier in p.get("tiers", []):
            up_to = tier.get("up_to")
            bounds = f"{low:f} – {up_to}" if up_to is not None else f"above {low:f}"
            flat = parse_decimal(tier.get("flat_amount", 0)) or Decimal(0)
            row = f"{bounds}: {format_price(parse_decimal(tier.get('unit_amount')) or Decimal(0), currency)} per unit"
            rows.append(row + (f" + {format_price(flat, currency)} flat" if flat else ""))
            low = parse_decimal(up_to) if up_to is not None else low
        how = "each tier prices its own units" if charge.model == "graduated" else "the reached tier prices all units"
        return f"{how}: " + "; ".join(rows)
    if charge.model == "percentage":
        text = f"{p.get('rate')}% + {price('fixed_amount')} per event"
        if p.get("free_units"):
            text += f", first {p['free_units']} events free"
        if p.get("min_per_transaction") is not None:
            text += f", min {price('min_per_transaction')} per event"
        if p.get("max_per_transaction") is not None:
            text += f", max {price('max_per_transaction')} per event"
        return text
    return json.dumps(p)


# --- billable metrics ------------------------------------------------------------------------------

def _add_errors(form: forms.Form, errors: Errors) -> None:
    for name, messages_ in errors.fields.items():
        for message in messages_:
            form.add_error(name if name in form.fields else None, message)


class BillableMetricForm(forms.ModelForm):
    class Meta:
        model = BillableMetric
        fields = ("code", "name", "description", "aggregation", "field", "allow_negative")

    def clean(self):
        data = super().clean()
        if self.instance.pk is None and not self.errors:
            _add_errors(self, billable_metric_errors(code=data.get("code", ""), name=data.get("name", ""),
                                                     aggregation=data.get("aggregation", ""),
                                                     field=(data.get("field") or "").strip(),
                                                     allow_negative=bool(data.get("allow_negative"))))
        return data


class PlanForm(forms.ModelForm):
    class Meta:
        model = Plan
        fields = ("code", "name", "description", "currency", "interval")

    def clean_code(self):
        errors = Errors()
        code_check(errors, "code", self.cleaned_data["code"])
        if errors.fields:
            raise ValidationError(errors.fields["code"])
        return self.cleaned_data["code"]


@admin.register(BillableMetric)
class BillableMetricAdmin(NoDeleteAdminMixin, SimpleHistoryAdmin):
    form = BillableMetricForm
    list_display = ("code", "name", "aggregation", "field", "created_at")
    list_filter = ("aggregation",)
    search_fields = ("code", "name", "field")

    def get_readonly_fields(self, request, obj=None):
        return ("code", "aggregation", "field", "allow_negative", "created_at", "updated_at") if obj else ()

    def save_model(self, request, obj, form, change):
        if change:
            obj.save()  # name/description only
            return
        metric = billable_metric_create(code=obj.code, name=obj.name, aggregation=obj.aggregation,
                                        field=obj.field, description=obj.description,
                                        allow_negative=obj.allow_negative, actor=request.user)
        obj.pk = metric.pk


# --- plans ---------------------------------------------------------------------------------------

class PlanVersionInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = PlanVersion
    fk_name = "plan"
    show_change_link = True
    fields = ("version", "customer", VERSION_AMOUNT, "pay_in_advance", VERSION_MINIMUM, "charge_count",
              "subscription_count", "created_at")
    readonly_fields = fields
    ordering = ("-version",)

    def get_queryset(self, request):
        return (super().get_queryset(request).select_related("customer", "plan")
                .annotate(_subs=Count("subscriptions", distinct=True), _charges=Count("charges", distinct=True)))

    @admin.display(description="charges")
    def charge_count(self, obj):
        return obj._charges

    @admin.display(description="subscriptions")
    def subscription_count(self, obj):
        return obj._subs


@admin.register(Plan)
class PlanAdmin(NoDeleteAdminMixin, SimpleHistoryAdmin):
    list_display = ("code", "name", "currency", "interval", "current_version_label", "created_at")
    list_filter = ("currency", "interval")
    search_fields = ("code", "name")
    date_hierarchy = "created_at"
    inlines = [PlanVersionInline]
    form = PlanForm

    def get_readonly_fields(self, request, obj=None):
        return ("code", "currency", "interval", "current_version_links", "created_at", "updated_at") if obj else ()

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("code", "name", "description", "currency", "interval")
        return ("code", "name", "description", "currency", "interval", "current_version_links", "created_at",
                "updated_at")

    def get_queryset(self, request):
        # the changelist shows each plan's current public version number: one aggregate, not a query per row
        return super().get_queryset(request).annotate(
            _current_version=Max("versions__version", filter=Q(versions__customer__isnull=True)))

    @admin.display(description="current version", ordering="_current_version")
    def current_version_label(self, obj):
        return f"v{obj._current_version}" if obj._current_version else "—"

    @admin.display(description="current version")
    def current_version_links(self, obj):
        version = obj.current_version
        if version is None:
            return "—"
        return format_html(
            '<a href="{}">v{}</a> · <a class="button" href="{}">Price preview</a> · '
            '<a class="button" href="{}?copy_from={}">New version with other prices</a>',
            reverse("admin:catalog_planversion_change", args=[version.pk]), version.version,
            reverse("admin:catalog_planversion_preview", args=[version.pk]),
            reverse("admin:catalog_planversion_add"), version.pk,
        )

    def save_model(self, request, obj, form, change):
        if change:
            plan_update(plan=obj, name=obj.name, description=obj.description, actor=request.user)
        else:
            plan = plan_create(code=obj.code, name=obj.name, description=obj.description, currency=obj.currency,
                               interval=obj.interval, actor=request.user)
            obj.pk = plan.pk
            messages.info(request, "Version 1 has no prices yet: use “New version with other prices”.")


# --- plan versions -------------------------------------------------------------------------------

class ChargeForm(forms.ModelForm):
    properties = forms.CharField(widget=PropertiesTextarea(),
                                 help_text=PROPERTIES_HELP, initial="{}")

    class Meta:
        model = Charge
        fields = ("billable_metric", "model", "properties", "invoice_display_name")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        value = self.initial.get("properties")
        if isinstance(value, (dict, list)):
            self.initial["properties"] = json.dumps(value, indent=2)

    def clean_properties(self):
        text = self.cleaned_data["properties"]
        try:
            value = json.loads(text or "{}")
        except json.JSONDecodeError as exc:
            raise ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from exc
        if not isinstance(value, dict):
            raise ValidationError("Properties must be a JSON object.")
        return value


class ChargeFormSet(BaseInlineFormSet):
    """Validates the charges exactly as the API does, naming the property in the form's errors."""

    def clean(self):
        super().clean()
        plan = getattr(self.instance, "plan", None) if self.instance.plan_id else None
        if plan is None or any(form.errors for form in self.forms):
            return
        rows = [(form, form.cleaned_data) for form in self.forms
                if form.cleaned_data and not form.cleaned_data.get("DELETE")]
        errors = Errors()
        charges_validate(charges=[{"billable_metric": data["billable_metric"], "model": data["model"],
                                   "properties": data["properties"]} for _, data in rows],
                         currency=plan.currency, errors=errors)
        pattern = re.compile(r"^charges\[(\d+)\]\.?(.*)$")
        for name, messages_ in errors.fields.items():
            match = pattern.match(name)
            form = rows[int(match.group(1))][0] if match else None
            for message in messages_:
                if form is None:
                    raise ValidationError(f"{name}: {message}")
                form.add_error(None, f"{match.group(2) or 'charge'}: {message}")


class ChargeInline(admin.StackedInline):
    model = Charge
    form = ChargeForm
    formset = ChargeFormSet
    extra = 1
    can_delete = False
    fields = ("billable_metric", "model", "properties", "invoice_display_name")
    autocomplete_fields = ()

    def get_extra(self, request, obj=None, **kwargs):
        if obj is None:
            source = _copy_source(request)
            return source.charges.count() if source else 1
        return 0

    def has_add_permission(self, request, obj=None):
        return obj is None and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return False

    def get_fields(self, request, obj=None):
        return self.fields if obj is None else ("billable_metric", "model", "price_summary", "properties_table",
                                                "invoice_display_name")

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("billable_metric", "model", "price_summary", "properties_table",
                                       "invoice_display_name")

    @admin.display(description="properties")
    def properties_table(self, charge):
        return charge_properties_table(charge.model, charge.properties, charge.plan_version.plan.currency)

    @admin.display(description="prices")
    def price_summary(self, charge):
        return pricing_summary(charge, charge.plan_version.plan.currency)


def _copy_source(request) -> PlanVersion | None:
    pk = request.GET.get("copy_from")
    if not pk or not str(pk).isdigit():
        return None
    return PlanVersion.objects.select_related("plan").filter(pk=pk).first()


class PlanVersionAddForm(forms.ModelForm):
    class Meta:
        model = PlanVersion
        fields = ("plan", "customer", "amount", "pay_in_advance", "trial_days", "minimum_commitment")
        help_texts = {
            "customer": "Leave empty for a new public version (new subscriptions get it). Choose a customer for a "
                        "private price override based on the current public version (base fee, minimum and charges).",
        }

    def clean(self):
        data = super().clean()
        errors = Errors()
        for name in ("amount", "minimum_commitment"):
            if data.get(name) is not None and data[name] < 0:
                errors.add(name, "must not be negative.")
        plan = data.get("plan")
        if plan is not None:
            money_places_check(errors, "minimum_commitment", data.get("minimum_commitment"), plan.currency)
            customer = data.get("customer")
            if customer is not None and customer.currency != plan.currency:
                errors.add("customer", f"customer is billed in {customer.currency}, the plan in {plan.currency}.")
        for name, messages_ in errors.fields.items():
            for message in messages_:
                self.add_error(name, message)
        return data


@admin.register(PlanVersion)
class PlanVersionAdmin(NoDeleteAdminMixin, SimpleHistoryAdmin):
    list_display = ("__str__", "plan", "version", "customer", VERSION_AMOUNT, VERSION_MINIMUM, "subscription_count",
                    "created_at")
    list_filter = ("plan__currency", "plan__interval", ("customer", admin.EmptyFieldListFilter))
    list_select_related = ("plan", "customer")
    search_fields = ("plan__code", "plan__name", "customer__external_id")
    date_hierarchy = "created_at"
    form = PlanVersionAddForm
    inlines = [ChargeInline]
    raw_id_fields = ("customer",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_subs=Count("subscriptions", distinct=True))

    @admin.display(description="subscriptions", ordering="_subs")
    def subscription_count(self, obj):
        return getattr(obj, "_subs", None)

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def get_fields(self, request, obj=None):
        if obj is None:
            return PlanVersionAddForm.Meta.fields
        return ("plan", "version", "customer", "based_on", VERSION_AMOUNT, "pay_in_advance", "trial_days",
                VERSION_MINIMUM, "tools", "subscriptions_on_version", "created_at")

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.get_fields(request, obj)

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        source = _copy_source(request)
        if source is not None:
            initial.update(plan=source.plan_id, customer=source.customer_id, amount=source.amount,
                           pay_in_advance=source.pay_in_advance, trial_days=source.trial_days,
                           minimum_commitment=source.minimum_commitment)
        return initial

    def get_formset_kwargs(self, request, obj, inline, prefix):
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        source = _copy_source(request)
        if request.method == "GET" and source is not None and isinstance(inline, ChargeInline):
            kwargs["initial"] = [
                {"billable_metric": c.billable_metric_id, "model": c.model, "properties": c.properties,
                 "invoice_display_name": c.invoice_display_name}
                for c in source.charges.order_by("position", "pk")
            ]
        return kwargs

    @admin.display(description="tools")
    def tools(self, obj):
        return format_html(
            '<a class="button" href="{}">Price preview</a> &nbsp; <a class="button" href="{}?copy_from={}">'
            'New version from this one</a>',
            reverse("admin:catalog_planversion_preview", args=[obj.pk]), reverse("admin:catalog_planversion_add"),
            obj.pk,
        )

    @admin.display(description="subscriptions on this version")
    def subscriptions_on_version(self, obj):
        subscriptions = list(obj.subscriptions.select_related("customer").order_by("external_id")[:100])
        if not subscriptions:
            return "none"
        total = obj.subscriptions.count()
        links = format_html_join(
            ", ", '<a href="{}">{}</a> ({}, {})',
            ((reverse("admin:subscriptions_subscription_change", args=[s.pk]) if _has_admin("subscription") else "#",
              s.external_id, s.customer.external_id, s.status) for s in subscriptions),
        )
        more = f" … and {total - len(subscriptions)} more" if total > len(subscriptions) else ""
        return format_html("{} subscription(s): {}{}", total, links, more)

    def save_model(self, request, obj, form, change):
        pass  # the version and its charges are created together by a service in save_related

    def save_related(self, request, form, formsets, change):
        data = form.cleaned_data
        charges = []
        for formset in formsets:
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
            for charge_form in formset.forms:
                cleaned = getattr(charge_form, "cleaned_data", None)
                if cleaned and not cleaned.get("DELETE") and cleaned.get("billable_metric"):
                    charges.append({"billable_metric": cleaned["billable_metric"], "model": cleaned["model"],
                                    "properties": cleaned["properties"],
                                    "invoice_display_name": cleaned.get("invoice_display_name", "")})
        plan, customer = data["plan"], data.get("customer")
        if customer is None:
            plan_update(plan=plan, amount=data["amount"], pay_in_advance=data["pay_in_advance"],
                        trial_days=data["trial_days"], minimum_commitment=data.get("minimum_commitment"),
                        charges=charges, actor=request.user)
            version = plan_current_version(plan)
        else:
            version = plan_version_override_create(base_version=plan_current_version(plan), customer=customer,
                                                   amount=data["amount"],
                                                   minimum_commitment=data.get("minimum_commitment"),
                                                   charges=charges, actor=request.user)
        form.instance.pk = version.pk
        form.instance.version = version.version

    def get_urls(self):
        urls = super().get_urls()
        preview = path("<path:object_id>/preview/", self.admin_site.admin_view(self.price_preview_view),
                       name="catalog_planversion_preview")
        return [preview, *urls]

    def price_preview_view(self, request, object_id):
        version = get_object_or_404(PlanVersion.objects.select_related("plan", "customer"), pk=object_id)
        if not self.has_view_permission(request, version):
            raise PermissionDenied
        charges = list(version.charges.select_related("billable_metric").order_by("position", "pk"))
        errors, quantities, counts, values, rows = [], {}, {}, {}, []
        seats_text = request.GET.get("seats", "1")
        seats = int(seats_text) if seats_text.isdigit() and int(seats_text) > 0 else None
        if seats is None:
            errors.append("Seats must be a positive whole number.")
        for charge in charges:
            q_text = request.GET.get(f"q_{charge.pk}", "0")
            n_text = request.GET.get(f"n_{charge.pk}", "0")
            v_text = request.GET.get(f"v_{charge.pk}", "")
            q = parse_decimal(q_text)
            if q is None or q < 0:
                errors.append(f"{charge.billable_metric.code}: quantity '{q_text}' is not a non-negative number.")
            else:
                quantities[charge.pk] = q
            if n_text.strip():
                if n_text.strip().isdigit():
                    counts[charge.pk] = int(n_text)
                else:
                    errors.append(f"{charge.billable_metric.code}: event count must be a whole number.")
            if v_text.strip():
                parsed = [parse_decimal(v) for v in re.split(r"[\s,;]+", v_text.strip()) if v]
                if any(v is None for v in parsed):
                    errors.append(f"{charge.billable_metric.code}: event values must be numbers.")
                else:
                    values[charge.pk] = parsed
            rows.append({"charge": charge, "quantity": q_text, "count": n_text, "values": v_text})
        preview = None
        if not errors and "seats" in request.GET:
            try:
                preview = plan_version_price_preview(version=version, quantities=quantities, event_values=values,
                                                     event_counts=counts, seats=seats)
            except (RatingError, ApplicationError, NotFoundError) as exc:
                errors.append(str(exc))
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "version": version, "rows": rows,
            "seats": seats_text, "preview": preview, "errors": errors, "title": f"Price preview — {version}",
            "base_price": format_price(version.amount, version.plan.currency),
            "minimum": None if version.minimum_commitment is None
            else format_money(version.minimum_commitment, version.plan.currency),
        }
        return TemplateResponse(request, "admin/catalog/planversion/price_preview.html", context)


def _has_admin(model_name: str) -> bool:
    from django.urls import NoReverseMatch

    try:
        reverse(f"admin:subscriptions_{model_name}_changelist")
        return True
    except NoReverseMatch:
        return False


@admin.register(Charge)
class ChargeAdmin(NoDeleteAdminMixin, SimpleHistoryAdmin):
    """Read-only list of every charge (charges are created with their plan version)."""

    list_display = ("plan_version", "billable_metric", "model", "prices")
    fields = readonly_fields = ("plan_version", "billable_metric", "model", "prices", "properties_table",
                                "invoice_display_name", "position")
    list_filter = ("model",)
    list_select_related = ("plan_version__plan", "plan_version__customer", "billable_metric")
    search_fields = ("plan_version__plan__code", "billable_metric__code")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="prices")
    def prices(self, obj):
        return pricing_summary(obj, obj.plan_version.plan.currency)

    @admin.display(description="properties")
    def properties_table(self, obj):
        return charge_properties_table(obj.model, obj.properties, obj.plan_version.plan.currency)


# --- taxes and coupons ---------------------------------------------------------------------------

from catalog.models import Coupon, CouponRedemption, CouponUsage, TaxRate  # noqa: E402
from catalog.services import (coupon_apply, coupon_create, coupon_remove, coupon_update, tax_rate_create,  # noqa: E402
                              tax_rate_update)
from customers.admin_forms import ServiceForm, form_for_request  # noqa: E402


class TaxRateForm(ServiceForm):
    class Meta:
        model = TaxRate
        fields = ("name", "country", "region", "rate", "active", "valid_from", "valid_to")

    def run_service(self, data):
        if self.instance.pk:
            return tax_rate_update(tax_rate=self.instance, name=data["name"], active=data["active"],
                                   valid_to=data.get("valid_to"), actor=self.actor)
        return tax_rate_create(name=data["name"], country=data["country"], region=data.get("region", ""),
                               rate=data["rate"], active=data["active"], valid_from=data.get("valid_from"),
                               valid_to=data.get("valid_to"), actor=self.actor)


@admin.register(TaxRate)
class TaxRateAdmin(NoDeleteAdminMixin, SimpleHistoryAdmin):
    """Tax rates. Rate, country, region and start never change once created (they taxed
    invoices): end a rate (valid to) and add its successor."""

    form = TaxRateForm
    list_display = ("name", "country", "region", TAX_RATE, "active", "valid_from", "valid_to")
    list_filter = ("active", "country")
    search_fields = ("name", "country", "region")

    def get_form(self, request, obj=None, **kwargs):
        return form_for_request(super().get_form(request, obj, **kwargs), request)

    def get_readonly_fields(self, request, obj=None):
        return ("country", "region", "rate", TAX_RATE, "valid_from", "created_at", "updated_at") if obj else ()

    def get_fields(self, request, obj=None):
        if obj is None:
            return super().get_fields(request, obj)
        return ("name", "country", "region", TAX_RATE, "active", "valid_from", "valid_to", "created_at", "updated_at")

    def save_model(self, request, obj, form, change):
        pass  # saved by the service in the form


class CouponForm(ServiceForm):
    class Meta:
        model = Coupon
        fields = ("code", "name", "kind", "amount_off", "currency", "percent_off", "duration", "duration_periods",
                  "applies_to_plans", "active", "redeem_by", "max_redemptions")

    def run_service(self, data):
        if self.instance.pk:
            return coupon_update(coupon=self.instance, name=data["name"], active=data["active"],
                                 redeem_by=data.get("redeem_by"), max_redemptions=data.get("max_redemptions"),
                                 actor=self.actor)
        coupon = coupon_create(code=data["code"], name=data["name"], kind=data["kind"], amount_off=data.get("amount_off"),
                               currency=data.get("currency") or "", percent_off=data.get("percent_off"),
                               duration=data["duration"], duration_periods=data.get("duration_periods"),
                               applies_to_plans=list(data.get("applies_to_plans") or []),
                               redeem_by=data.get("redeem_by"), max_redemptions=data.get("max_redemptions"),
                               actor=self.actor)
        if not data["active"]:
            coupon = coupon_update(coupon=coupon, active=False, actor=self.actor)
        return coupon


class CouponRedemptionInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = CouponRedemption
    show_change_link = True
    fields = readonly_fields = ("customer", "subscription", "periods_applied", "created_at", "ended_at", "removed_at")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("customer", "subscription")


@admin.register(Coupon)
class CouponAdmin(NoDeleteAdminMixin, SimpleHistoryAdmin):
    """Coupons. Amounts, kind and duration never change; name, active, redeem-by and the
    redemption limit do. Redemptions are listed below (apply one from "Coupon redemptions")."""

    form = CouponForm
    list_display = ("code", "name", "kind", "discount_label", "duration", "duration_periods", "active", "redeem_by",
                    "max_redemptions", "redemption_count")
    list_filter = ("kind", "duration", "active")
    search_fields = ("code", "name")
    date_hierarchy = "created_at"
    filter_horizontal = ("applies_to_plans",)

    def get_form(self, request, obj=None, **kwargs):
        return form_for_request(super().get_form(request, obj, **kwargs), request)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_redemptions=Count("redemptions"))

    def get_inlines(self, request, obj):
        return [CouponRedemptionInline] if obj else []

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("code", "kind", "amount_off", COUPON_AMOUNT, "currency", "percent_off", COUPON_PERCENT, "duration",
                "duration_periods", "applies_to_plans", "created_at", "updated_at")

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        return fields if obj is None else [f for f in fields if f not in ("amount_off", "percent_off")]

    @admin.display(description="discount")
    def discount_label(self, obj):
        if obj.kind == "percent":
            return f"{obj.percent_off.normalize():f}%"
        return COUPON_AMOUNT(obj)

    @admin.display(description="redemptions", ordering="_redemptions")
    def redemption_count(self, obj):
        return getattr(obj, "_redemptions", None)

    def save_model(self, request, obj, form, change):
        pass  # saved by the service in the form

    def save_related(self, request, form, formsets, change):
        pass  # plans are set by coupon_create; inlines are read-only


class CouponRedemptionForm(ServiceForm):
    class Meta:
        model = CouponRedemption
        fields = ("coupon", "customer", "subscription")
        help_texts = {"subscription": "Optional: only this subscription's invoices. Empty: every invoice of the customer."}

    def run_service(self, data):
        return coupon_apply(coupon=data["coupon"], customer=data["customer"], subscription=data.get("subscription"),
                            actor=self.actor)


class CouponUsageInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = CouponUsage
    fields = readonly_fields = ("invoice_id", "amount", "created_at")


@admin.register(CouponRedemption)
class CouponRedemptionAdmin(NoDeleteAdminMixin, SimpleHistoryAdmin):
    """Coupons applied to customers/subscriptions. "Add" applies one (`coupon_apply`, with its
    checks); the "Remove" action stops it for future invoices."""

    form = CouponRedemptionForm
    list_display = ("coupon", "customer", "subscription", "periods_applied", "is_active", "created_at", "ended_at",
                    "removed_at")
    list_filter = ("coupon__kind", "coupon__duration", ("removed_at", admin.EmptyFieldListFilter),
                   ("ended_at", admin.EmptyFieldListFilter))
    list_select_related = ("coupon", "customer", "subscription")
    search_fields = ("coupon__code", "customer__external_id", "customer__name", "subscription__external_id")
    date_hierarchy = "created_at"
    raw_id_fields = ("customer", "subscription")
    actions = ["remove"]

    def get_form(self, request, obj=None, **kwargs):
        return form_for_request(super().get_form(request, obj, **kwargs), request)

    def get_inlines(self, request, obj):
        return [CouponUsageInline] if obj else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return CouponRedemptionForm.Meta.fields
        return ("coupon", "customer", "subscription", "periods_applied", "created_at", "ended_at", "removed_at")

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj) if obj else ()

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(boolean=True, description="active")
    def is_active(self, obj):
        return obj.is_active

    def save_model(self, request, obj, form, change):
        pass  # saved by the service in the form

    @admin.action(description="Remove selected coupons (future invoices)")
    def remove(self, request, queryset):
        for redemption in queryset.order_by("pk"):
            try:
                coupon_remove(redemption=redemption, actor=request.user)
                self.message_user(request, f"Removed {redemption}.", messages.SUCCESS)
            except ApplicationError as exc:
                self.message_user(request, f"{redemption}: {exc.message}", messages.ERROR)
