"""Billable metrics: created through the service (same validation as the API), then only renamed."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from catalog.models import BillableMetric
from catalog.services import billable_metric_create, billable_metric_errors
from catalog.validation import Errors
from common.admin_mixins import NoDeleteAdminMixin


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
