"""Tax rates: created and changed through the catalog services (the admin form is a service form)."""

from __future__ import annotations

from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from catalog.models import TaxRate
from catalog.services import tax_rate_create, tax_rate_update
from common.admin_forms import ServiceForm, form_for_request
from common.admin_mixins import NoDeleteAdminMixin


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
    list_display = ("name", "country", "region", "rate", "active", "valid_from", "valid_to")
    list_filter = ("active", "country")
    search_fields = ("name", "country", "region")

    def get_form(self, request, obj=None, **kwargs):
        return form_for_request(super().get_form(request, obj, **kwargs), request)

    def get_readonly_fields(self, request, obj=None):
        return ("country", "region", "rate", "valid_from", "created_at", "updated_at") if obj else ()

    def save_model(self, request, obj, form, change):
        pass  # saved by the service in the form
