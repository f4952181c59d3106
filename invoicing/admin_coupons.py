"""Coupon redemptions in the admin: applied and removed through `invoicing.coupons` (with its checks).
Also lists a coupon's redemptions on the catalog coupon page (`CouponAdmin.redemption_inlines`)."""

from __future__ import annotations

from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from catalog.admin.coupons import CouponAdmin
from common.admin_forms import ServiceForm, form_for_request, run_per_row
from common.admin_mixins import NoDeleteAdminMixin, ReadOnlyInlineMixin
from invoicing.coupons import coupon_apply, coupon_remove
from invoicing.models import CouponRedemption, CouponUsage


class CouponRedemptionInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = CouponRedemption
    show_change_link = True
    fields = readonly_fields = ("customer", "subscription", "periods_applied", "created_at", "ended_at", "removed_at")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("customer", "subscription")


CouponAdmin.redemption_inlines = (CouponRedemptionInline,)


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
