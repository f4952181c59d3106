from django.contrib import admin, messages
from simple_history.admin import SimpleHistoryAdmin

from common.admin_mixins import NoDeleteAdminMixin, ReadOnlyInlineMixin
from customers.admin_forms import ServiceForm, form_for_request
from customers.models import ApiKey, Customer
from customers.services import CUSTOMER_FIELDS, api_key_revoke, customer_create, customer_update


class CustomerForm(ServiceForm):
    """Saved by `customer_create` / `customer_update`, so the admin keeps the API's rules (the
    currency is locked once the customer has subscriptions or invoices) and writes the audit row."""

    class Meta:
        model = Customer
        fields = ("external_id", *CUSTOMER_FIELDS)

    def run_service(self, data):
        fields = {name: data[name] for name in CUSTOMER_FIELDS if name in data}
        if self.instance.pk:
            return customer_update(customer=self.instance, actor=self.actor, **fields)
        return customer_create(external_id=data["external_id"], actor=self.actor, **fields)


@admin.register(Customer)
class CustomerAdmin(NoDeleteAdminMixin, SimpleHistoryAdmin):
    form = CustomerForm
    list_display = ("external_id", "name", "currency", "country", "collection_method", "created_at")
    list_filter = ("currency", "collection_method", "country", "tax_exempt")
    search_fields = ("external_id", "name", "email", "billing_email")
    date_hierarchy = "created_at"

    def get_form(self, request, obj=None, **kwargs):
        return form_for_request(super().get_form(request, obj, **kwargs), request)

    def get_readonly_fields(self, request, obj=None):
        fixed = ("created_at", "updated_at", "stripe_customer_id")
        return ("external_id", *fixed) if obj else fixed

    def save_model(self, request, obj, form, change):
        pass  # saved by the service in the form


@admin.register(ApiKey)
class ApiKeyAdmin(NoDeleteAdminMixin, SimpleHistoryAdmin):
    list_display = ("name", "prefix", "scopes", "is_active", "last_used_at", "created_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "key_hash", "scopes", "last_used_at", "revoked_at", "created_at", "updated_at")
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # keys are created with `manage.py create_api_key`, which shows the secret once

    @admin.display(boolean=True)
    def is_active(self, obj):
        return obj.is_active

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request, queryset):
        for key in queryset.order_by("pk"):
            api_key_revoke(api_key=key, actor=request.user)
            self.message_user(request, f"Revoked {key}.", messages.SUCCESS)


# --- credits -------------------------------------------------------------------------------------

from django import forms  # noqa: E402

from customers.models import CreditGrant, CreditGrantUsage, CustomerBalanceTransaction  # noqa: E402
from customers.services import balance_adjust, prepaid_credit_grant  # noqa: E402
from common.admin_tables import money_of  # noqa: E402

AMOUNT, REMAINING = money_of("amount", "currency"), money_of("remaining", "currency")


class CreditGrantForm(ServiceForm):
    class Meta:
        model = CreditGrant
        fields = ("customer", "currency", "amount", "expires_at", "reason")
        help_texts = {"currency": "Only invoices in this currency use the credit.",
                      "expires_at": "Optional; the credit cannot be used from this moment on."}

    def run_service(self, data):
        return prepaid_credit_grant(customer=data["customer"], currency=data["currency"], amount=data["amount"],
                                    expires_at=data.get("expires_at"), reason=data["reason"], actor=self.actor)


class CreditGrantUsageInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = CreditGrantUsage
    fields = readonly_fields = ("invoice_id", "amount", "created_at")


@admin.register(CreditGrant)
class CreditGrantAdmin(NoDeleteAdminMixin, SimpleHistoryAdmin):
    """Prepaid credits. "Add" grants credit through `prepaid_credit_grant`; grants are read-only after."""

    list_display = ("customer", "currency", AMOUNT, REMAINING, "expires_at", "reason", "created_at")
    list_filter = ("currency",)
    list_select_related = ("customer",)
    search_fields = ("customer__external_id", "customer__name", "reason")
    date_hierarchy = "created_at"
    raw_id_fields = ("customer",)
    form = CreditGrantForm

    def get_form(self, request, obj=None, **kwargs):
        return form_for_request(super().get_form(request, obj, **kwargs), request)

    def get_inlines(self, request, obj):
        return [CreditGrantUsageInline] if obj else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return super().get_fields(request, obj)
        return ("customer", "currency", AMOUNT, REMAINING, "expires_at", "reason", "created_at")

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj) if obj else ()

    def has_change_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        pass  # saved by the service in the form


class BalanceAdjustmentForm(ServiceForm):
    class Meta:
        model = CustomerBalanceTransaction
        fields = ("customer", "currency", "amount", "description")
        help_texts = {"amount": "Positive adds credit, negative removes it (the balance never goes below zero).",
                      "description": "Why (shown in the ledger and the audit log)."}

    def run_service(self, data):
        return balance_adjust(customer=data["customer"], currency=data["currency"], amount=data["amount"],
                              description=data["description"], actor=self.actor)


@admin.register(CustomerBalanceTransaction)
class CustomerBalanceTransactionAdmin(NoDeleteAdminMixin, SimpleHistoryAdmin):
    """The credit balance ledger, read-only. "Add" records a manual adjustment (`balance_adjust`)."""

    list_display = ("created_at", "customer", "currency", AMOUNT, "kind", "invoice_id", "credit_note_id",
                    "description", "actor")
    list_filter = ("kind", "currency")
    list_select_related = ("customer",)
    search_fields = ("customer__external_id", "customer__name", "invoice_id", "credit_note_id", "description")
    date_hierarchy = "created_at"
    raw_id_fields = ("customer",)
    form = BalanceAdjustmentForm

    def get_form(self, request, obj=None, **kwargs):
        return form_for_request(super().get_form(request, obj, **kwargs), request)

    def get_fields(self, request, obj=None):
        if obj is None:
            return BalanceAdjustmentForm.Meta.fields
        return ("customer", "currency", AMOUNT, "kind", "invoice_id", "credit_note_id", "description", "actor",
                "created_at")

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj) if obj else ()

    def has_change_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        pass  # saved by the service in the form
