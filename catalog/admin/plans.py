"""Plans: list their versions with the number of subscriptions on each; created through the service."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Max, Q
from django.urls import reverse
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from catalog.models import Plan, PlanVersion
from catalog.services import plan_create, plan_update
from catalog.validation import Errors, code_check
from common.admin_mixins import NoDeleteAdminMixin, ReadOnlyInlineMixin
from common.admin_tables import money_of


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


VERSION_AMOUNT, VERSION_MINIMUM = money_of("amount", "plan.currency"), money_of("minimum_commitment", "plan.currency")


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
