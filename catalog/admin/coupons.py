"""Coupons and their redemptions: created, changed, applied and removed through the catalog services."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count
from simple_history.admin import SimpleHistoryAdmin

from catalog.models import Coupon, CouponRedemption, CouponUsage
from catalog.services import coupon_apply, coupon_create, coupon_remove, coupon_update
from common.admin_forms import ServiceForm, form_for_request, run_per_row
from common.admin_mixins import NoDeleteAdminMixin, ReadOnlyInlineMixin
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
        run_per_row(self, request, queryset.order_by("pk"),
                    lambda redemption: coupon_remove(redemption=redemption, actor=request.user),
                    done=lambda redemption, _: f"Removed {redemption}.")
