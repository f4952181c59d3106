"""Invoice and billing-run representations (API.md). Money is a string in the currency's own
exponent ("720.00", "1500" for JPY); unit prices keep up to 12 decimals; quantities are exact."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import prefetch_related_objects
from rest_framework import serializers

from common.money import MONEY_FIELD, format_money, format_quantity, quantize_unit_price
from common.serializer_fields import INT64_MAX, BoundedDateField
from invoicing.models import (BillingRun, BillingRunStatus, CouponRedemption, CreditNote, CreditNoteLine, CreditNoteOutcome,
                              Invoice, InvoiceLine)


def _unit(value: Decimal | None) -> str | None:
    return None if value is None else f"{quantize_unit_price(value):f}"


class InvoiceLineSerializer(serializers.ModelSerializer):
    billable_metric = serializers.SerializerMethodField()
    quantity = serializers.SerializerMethodField()
    unit_amount = serializers.SerializerMethodField()
    amount = serializers.SerializerMethodField()

    class Meta:
        model = InvoiceLine
        fields = ("id", "kind", "description", "billable_metric", "quantity", "unit_amount", "amount", "period_start",
                  "period_end", "tiers", "taxable")

    def get_billable_metric(self, line) -> str | None:
        return line.billable_metric.code if line.billable_metric_id else None

    def get_quantity(self, line) -> str:
        return format_quantity(line.quantity)

    def get_unit_amount(self, line) -> str | None:
        return _unit(line.unit_amount)

    def get_amount(self, line) -> str:
        return format_money(line.amount, line.invoice.currency)


MONEY_FIELDS = ("subtotal", "discount", "tax", "total", "amount_paid", "amount_due", "credit_balance_applied",
                "prepaid_applied")


class InvoiceListSerializer(serializers.ListSerializer):
    """Loads the credit notes of a whole page in one query (no query per invoice)."""

    def to_representation(self, data):
        items = list(data.all() if hasattr(data, "all") else data)
        prefetch_related_objects([i for i in items if isinstance(i, Invoice)], "credit_notes")
        return super().to_representation(items)


class InvoiceSerializer(serializers.ModelSerializer):
    customer = serializers.CharField(source="customer.external_id")
    subscription = serializers.SerializerMethodField()
    lines = InvoiceLineSerializer(many=True)
    credit_notes = serializers.SerializerMethodField()

    class Meta:
        model = Invoice
        list_serializer_class = InvoiceListSerializer
        fields = ("id", "number", "status", "customer", "subscription", "currency", "issue_date", "due_date",
                  "period_start", "period_end", *MONEY_FIELDS, "discount_lines", "tax_lines", "tax_note",
                  "credit_notes", "lines", "billing_date", "reason", "needs_review",
                  "review_reasons", "approved_by", "approved_at", "finalized_at", "paid_at", "voided_at",
                  "customer_snapshot", "created_at")

    def get_subscription(self, invoice) -> str | None:
        return invoice.subscription.external_id if invoice.subscription_id else None

    def get_credit_notes(self, invoice) -> list[dict]:
        notes = sorted(invoice.credit_notes.all(), key=lambda n: n.number)
        return [{"id": str(n.pk), "number": n.number, "status": n.status, "outcome": n.outcome,
                 "total": format_money(n.total, n.currency)} for n in notes]

    def to_representation(self, invoice):
        data = super().to_representation(invoice)
        for name in MONEY_FIELDS:
            data[name] = format_money(getattr(invoice, name), invoice.currency)
        return data


# --- credit notes ------------------------------------------------------------------------------------

CREDIT_NOTE_MONEY_FIELDS = ("subtotal", "tax", "total")


class CreditNoteLineSerializer(serializers.ModelSerializer):
    amount = serializers.SerializerMethodField()

    class Meta:
        model = CreditNoteLine
        fields = ("id", "invoice_line", "description", "amount")

    def get_amount(self, line) -> str:
        return format_money(line.amount, line.credit_note.currency)


class CreditNoteSerializer(serializers.ModelSerializer):
    invoice = serializers.UUIDField(source="invoice_id")
    invoice_number = serializers.CharField(source="invoice.number")
    customer = serializers.CharField(source="customer.external_id")
    lines = CreditNoteLineSerializer(many=True)

    class Meta:
        model = CreditNote
        fields = ("id", "number", "invoice", "invoice_number", "customer", "currency", "status", "outcome", "reason",
                  "issue_date", *CREDIT_NOTE_MONEY_FIELDS, "tax_lines", "lines", "created_by", "created_at")

    def to_representation(self, note):
        data = super().to_representation(note)
        for name in CREDIT_NOTE_MONEY_FIELDS:
            data[name] = format_money(getattr(note, name), note.currency)
        return data


class CreditNoteLineInputSerializer(serializers.Serializer):
    line_id = serializers.IntegerField(min_value=1, max_value=INT64_MAX, help_text="An invoice line's id (invoice `lines[].id`)")
    amount = serializers.DecimalField(**MONEY_FIELD, required=False, allow_null=True,
                                      coerce_to_string=False,
                                      help_text="Pre-tax amount to credit on that line; omitted: all that remains")


class CreditNoteCreateSerializer(serializers.Serializer):
    amount = serializers.DecimalField(**MONEY_FIELD, required=False, allow_null=True,
                                      coerce_to_string=False,
                                      help_text="Total credited, tax included. Required unless `lines` are given.")
    reason = serializers.CharField(max_length=500)
    lines = CreditNoteLineInputSerializer(many=True, required=False)
    outcome = serializers.ChoiceField(choices=CreditNoteOutcome.choices, required=False, allow_null=True)
    refund = serializers.BooleanField(required=False, default=False,
                                      help_text='`true` is the same as `"outcome": "refund"` (API.md Payments)')

    def validate(self, attrs):
        if attrs.get("amount") is None and not attrs.get("lines"):
            raise serializers.ValidationError({"amount": ["This field is required (or give lines)."]})
        if attrs.pop("refund", False):
            if attrs.get("outcome") not in (None, CreditNoteOutcome.REFUND):
                raise serializers.ValidationError({"refund": ["contradicts outcome"]})
            attrs["outcome"] = CreditNoteOutcome.REFUND
        return attrs


class MarkPaidSerializer(serializers.Serializer):
    amount = serializers.DecimalField(**MONEY_FIELD, required=False, coerce_to_string=False)
    date = BoundedDateField(required=False)
    reference = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class BillingRunCreateSerializer(serializers.Serializer):
    as_of = BoundedDateField()
    finalize = serializers.BooleanField(required=False, default=True)
    wait = serializers.BooleanField(
        required=False, default=True,
        help_text="true (default): bill inside the request (201; 409 billing_run_too_large above the synchronous "
                  "limit). false: 202 with the run id at once; the run fans out over the workers; poll GET.")


class BillingRunSerializer(serializers.ModelSerializer):
    subscriptions_total = serializers.IntegerField(source="subscriptions_due", read_only=True,
                                                   help_text="Subscriptions due in this run")
    status = serializers.SerializerMethodField(
        help_text="queued | running | succeeded | failed. A run that billed all but some isolated subscriptions "
                  "is failed (never reported as success, DESIGN.md §6): `errors` names them, `error` sums up.")
    error = serializers.SerializerMethodField()

    def get_status(self, run) -> str:
        return BillingRunStatus.FAILED if run.status == BillingRunStatus.PARTIAL else run.status

    def get_error(self, run) -> str:
        if run.error or run.status != BillingRunStatus.PARTIAL:
            return run.error
        return f"{run.error_count} subscription(s) could not be billed; see errors (the others were billed)."

    class Meta:
        model = BillingRun
        fields = ("id", "as_of", "status", "subscriptions_total", "subscriptions_done", "invoices_created",
                  "lines_created", "invoices_flagged", "invoices_finalized", "subscriptions_examined",
                  "subscriptions_due", "error_count", "errors", "error", "triggered_by", "created_at", "started_at",
                  "finished_at", "heartbeat_at")


# --- coupon redemptions (POST/GET customers/{external_id}/coupons/) ---------------------------------

class CouponApplySerializer(serializers.Serializer):
    coupon = serializers.CharField(help_text="Coupon code")
    subscription = serializers.CharField(required=False, allow_null=True, default=None,
                                         help_text="Subscription external id; empty = every invoice of the customer")


class CouponRedemptionSerializer(serializers.ModelSerializer):
    coupon = serializers.CharField(source="coupon.code")
    customer = serializers.CharField(source="customer.external_id")
    subscription = serializers.CharField(source="subscription.external_id", allow_null=True, default=None)
    active = serializers.BooleanField(source="is_active")

    class Meta:
        model = CouponRedemption
        fields = ("id", "coupon", "customer", "subscription", "periods_applied", "active", "created_at", "ended_at",
                  "removed_at")
