"""Tax rates: created and changed through the catalog services (the admin form is a service form)."""

from __future__ import annotations

from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from catalog.models import TaxRate
from catalog.services import tax_rate_create, tax_rate_update
from common.admin_forms import ServiceForm, form_for_request
from common.admin_mixins import NoDeleteAdminMixin
from common.admin_tables import percent_of

TAX_RATE = percent_of("rate")


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
