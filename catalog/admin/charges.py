"""Charges: edited as pretty-printed JSON with their plan version (validated like the API), shown as a
readable price summary; the read-only list of every charge."""

from __future__ import annotations

import json
import re

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet
from simple_history.admin import SimpleHistoryAdmin

from catalog.admin.pricing import PROPERTIES_HELP, pricing_summary
from catalog.models import Charge, PlanVersion
from catalog.services import charges_validate
from catalog.validation import Errors
from common.admin_mixins import NoDeleteAdminMixin
from common.admin_tables import PropertiesTextarea, charge_properties_table


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
            source = copy_source(request)
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


def copy_source(request) -> PlanVersion | None:
    pk = request.GET.get("copy_from")
    if not pk or not str(pk).isdigit():
        return None
    return PlanVersion.objects.select_related("plan").filter(pk=pk).first()


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
