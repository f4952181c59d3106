"""Payments in the admin: money and status read-only, transitions as actions that call the
services and report per row (STYLE.md "Admin and pages"). Finance records a bank transfer, check
or other manual payment with "Add payment" (the form calls `payment_record_manual`)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils import timezone
from simple_history.admin import SimpleHistoryAdmin

from common.admin_forms import run_per_row
from common.admin_mixins import MoneyAdminMixin, NoDeleteAdminMixin, ReadOnlyInlineMixin
from common.errors import ApplicationError
from invoicing.admin import InvoiceAdmin
from invoicing.models import Invoice, InvoiceStatus
from payments.models import MANUAL_METHODS, AttemptStatus, Payment, PaymentAttempt, PaymentMethod, Refund, WebhookEvent
from payments.services import payment_charge_invoice, payment_method_detach, payment_record_manual, refund_execute


class RefundInline(MoneyAdminMixin, ReadOnlyInlineMixin, admin.TabularInline):
    model = Refund
    money_fields = ("amount",)
    fields = ("created_at", "amount", "currency", "status", "stripe_refund", "credit_note", "reason", "rule")
    readonly_fields = fields


class ManualPaymentForm(forms.ModelForm):
    """Only what finance enters for a payment received outside Stripe; the service does the rest."""

    invoice = forms.ModelChoiceField(queryset=Invoice.objects.filter(
        status__in=[InvoiceStatus.FINALIZED, InvoiceStatus.UNCOLLECTIBLE], amount_due__gt=0).select_related("customer"))
    method = forms.ChoiceField(choices=[(m.value, m.label) for m in MANUAL_METHODS])
    paid_on = forms.DateField(initial=timezone.localdate)

    class Meta:
        model = Payment
        fields = ("invoice", "amount", "paid_on", "method", "reference")

    def clean(self):
        data = super().clean()
        invoice, amount = data.get("invoice"), data.get("amount")
        if invoice is not None and amount is not None:
            if amount <= 0:
                self.add_error("amount", "Must be more than 0.")
            elif amount > invoice.amount_due:
                self.add_error("amount", f"More than the amount due ({invoice.amount_due} {invoice.currency}).")
        return data


@admin.register(Payment)
class PaymentAdmin(MoneyAdminMixin, NoDeleteAdminMixin, SimpleHistoryAdmin):
    money_fields = ("amount", "amount_applied", "amount_refunded", "disputed_amount")
    list_display = ("created_at", "invoice", "customer", "method", "status", "amount", "currency", "amount_refunded",
                    "decline_code", "paid_on")
    list_filter = ("status", "method", "currency")
    search_fields = ("invoice__number", "customer__external_id", "customer__name", "stripe_payment_intent", "reference")
    list_select_related = ("invoice", "customer")
    date_hierarchy = "created_at"
    inlines = [RefundInline]
    actions = ["retry_charge_now"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ManualPaymentForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_inlines(self, request, obj):
        return [] if obj is None else self.inlines

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return self._map(f.name for f in Payment._meta.fields)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("invoice", "amount", "paid_on", "method", "reference")
        return self._map(f.name for f in Payment._meta.fields)

    def has_change_permission(self, request, obj=None):
        return False if obj is not None else super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        try:
            payment = payment_record_manual(invoice=data["invoice"], amount=data["amount"], paid_on=data["paid_on"],
                                            method=data["method"], reference=data.get("reference", ""), actor=request.user)
        except ApplicationError as exc:
            self.message_user(request, f"Not recorded: {exc.message}", messages.ERROR)
            return
        obj.pk = payment.pk
        obj._state.adding = False

    def save_related(self, request, form, formsets, change):
        pass  # the service wrote everything

    @admin.action(description="Charge the invoice's default card now (failed card payments)", permissions=["view"])
    def retry_charge_now(self, request, queryset):
        if not self._can_act(request):
            return
        def done(invoice, attempt):
            level = messages.SUCCESS if attempt.status == AttemptStatus.SUCCEEDED else messages.WARNING
            reason = f" ({attempt.decline_code or attempt.failure_code})" if attempt.status == AttemptStatus.FAILED else ""
            return f"{invoice}: attempt {attempt.attempt_number} {attempt.status}{reason}", level

        invoice_ids = queryset.order_by("invoice_id").values_list("invoice_id", flat=True).distinct()
        run_per_row(self, request, (Invoice.objects.get(pk=invoice_id) for invoice_id in invoice_ids),
                    lambda invoice: payment_charge_invoice(invoice=invoice, actor=request.user), done=done)

    def _can_act(self, request) -> bool:
        if not request.user.has_perm("payments.add_payment"):
            self.message_user(request, "Your role may not change payments.", messages.ERROR)
            return False
        return True


@admin.register(PaymentAttempt)
class PaymentAttemptAdmin(MoneyAdminMixin, NoDeleteAdminMixin, SimpleHistoryAdmin):
    money_fields = ("amount",)
    list_display = ("created_at", "invoice", "customer", "attempt_number", "status", "amount", "currency",
                    "decline_code", "advice_code", "rule")
    list_filter = ("status", "decline_code", "currency")
    search_fields = ("invoice__number", "customer__external_id", "stripe_payment_intent")
    list_select_related = ("invoice", "customer")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in PaymentAttempt._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Refund)
class RefundAdmin(MoneyAdminMixin, NoDeleteAdminMixin, SimpleHistoryAdmin):
    money_fields = ("amount",)
    list_display = ("created_at", "payment", "amount", "currency", "status", "stripe_refund", "credit_note", "rule")
    list_filter = ("status", "currency", "rule")
    search_fields = ("payment__invoice__number", "payment__customer__external_id", "stripe_refund")
    list_select_related = ("payment", "credit_note")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Refund._meta.fields]
    actions = ["send_pending"]

    def has_add_permission(self, request):
        return False  # refunds come from credit notes with outcome "refund"

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Send pending card refunds to Stripe again", permissions=["view"])
    def send_pending(self, request, queryset):
        if not request.user.has_perm("payments.add_payment"):
            self.message_user(request, "Your role may not change payments.", messages.ERROR)
            return
        for refund in queryset.order_by("pk"):
            result = refund_execute(refund_id=refund.pk)
            level = messages.ERROR if result.status == "failed" else messages.SUCCESS
            self.message_user(request, f"Refund {refund.pk}: {result.status}", level)


@admin.register(PaymentMethod)
class PaymentMethodAdmin(NoDeleteAdminMixin, SimpleHistoryAdmin):
    list_display = ("customer", "brand", "last4", "exp_month", "exp_year", "is_default", "detached_at", "created_at")
    list_filter = ("brand", "is_default")
    search_fields = ("customer__external_id", "customer__name", "last4", "stripe_payment_method")
    list_select_related = ("customer",)
    readonly_fields = [f.name for f in PaymentMethod._meta.fields]
    actions = ["detach_selected"]

    def has_add_permission(self, request):
        return False  # attached through the API (Stripe.js creates the method)

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Detach selected payment methods", permissions=["view"])
    def detach_selected(self, request, queryset):
        if not request.user.has_perm("payments.add_payment"):
            self.message_user(request, "Your role may not change payments.", messages.ERROR)
            return
        for method in queryset.order_by("pk"):
            payment_method_detach(payment_method=method, actor=request.user)
            self.message_user(request, f"Detached {method}.", messages.SUCCESS)


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = ("received_at", "provider", "type", "event_id", "status", "deliveries", "result")
    list_filter = ("provider", "type", "status")
    search_fields = ("event_id",)
    date_hierarchy = "received_at"
    readonly_fields = [f.name for f in WebhookEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class InvoicePaymentInline(MoneyAdminMixin, ReadOnlyInlineMixin, admin.TabularInline):
    """The invoice page shows the payments app's records (invoicing cannot import payments)."""

    model = Payment
    money_fields = ("amount", "amount_refunded")
    fk_name = "invoice"
    verbose_name = "payment"
    fields = ("created_at", "method", "status", "amount", "amount_refunded", "decline_code", "paid_on", "reference")
    readonly_fields = fields


class InvoiceAttemptInline(MoneyAdminMixin, ReadOnlyInlineMixin, admin.TabularInline):
    model = PaymentAttempt
    money_fields = ("amount",)
    fields = ("attempt_number", "status", "amount", "decline_code", "advice_code", "failure_message", "created_at")
    readonly_fields = fields


# The legacy `invoicing.Payment` inline gives way to the payments app's records (its rows were
# copied by payments migration 0002).
InvoiceAdmin.inlines = [*(i for i in InvoiceAdmin.inlines if i.model._meta.label != "invoicing.Payment"),
                        InvoicePaymentInline, InvoiceAttemptInline]
