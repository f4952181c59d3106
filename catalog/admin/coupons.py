"""Coupons: created and changed through the catalog services. Their redemptions (applied, removed)
are invoicing's: `invoicing.admin_coupons` registers that admin and the inline listed on a coupon."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count
from simple_history.admin import SimpleHistoryAdmin

from catalog.models import Coupon
from catalog.services import coupon_create, coupon_update
from common.admin_forms import ServiceForm, form_for_request
from common.admin_mixins import NoDeleteAdminMixin
from common.admin_tables import money_of, percent_of

COUPON_AMOUNT, COUPON_PERCENT = money_of("amount_off", "currency"), percent_of("percent_off")


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

    # Filled by invoicing.admin_coupons (the redemptions inline): catalog may not import invoicing.
    redemption_inlines: tuple = ()

    def get_inlines(self, request, obj):
        return list(self.redemption_inlines) if obj else []

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
