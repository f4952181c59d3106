"""Plan versions: never edited; "New version from this one" opens the add form prefilled with its
prices and charges, saving calls `plan_update` (public) or `plan_version_override_create` (a
customer's private price); "Price preview" rates a version for quantities typed in."""

from __future__ import annotations

import re

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin

from catalog.admin.charges import ChargeInline, copy_source
from catalog.admin.plans import VERSION_AMOUNT, VERSION_MINIMUM
from catalog.models import PlanVersion
from catalog.rating import RatingError
from catalog.selectors import plan_current_version, plan_version_price_preview
from catalog.services import plan_update, plan_version_override_create
from catalog.validation import Errors, money_places_check
from common.admin_mixins import NoDeleteAdminMixin
from common.errors import ApplicationError, NotFoundError
from common.money import format_money, format_price, parse_decimal


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
        source = copy_source(request)
        if source is not None:
            initial.update(plan=source.plan_id, customer=source.customer_id, amount=source.amount,
                           pay_in_advance=source.pay_in_advance, trial_days=source.trial_days,
                           minimum_commitment=source.minimum_commitment)
        return initial

    def get_formset_kwargs(self, request, obj, inline, prefix):
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        source = copy_source(request)
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
    try:
        reverse(f"admin:subscriptions_{model_name}_changelist")
        return True
    except NoReverseMatch:
        return False
