"""Invoice and billing-run representations (API.md). Money is a string in the currency's own
exponent ("720.00", "1500" for JPY); unit prices keep up to 12 decimals; quantities are exact."""

from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from catalog.rating import format_quantity
from common.money import format_money, quantize_unit_price
from invoicing.models import BillingRun, Invoice, InvoiceLine


def _unit(value: Decimal | None) -> str | None:
    return None if value is None else f"{quantize_unit_price(value):f}"


class InvoiceLineSerializer(serializers.ModelSerializer):
    billable_metric = serializers.SerializerMethodField()
    quantity = serializers.SerializerMethodField()
    unit_amount = serializers.SerializerMethodField()
    amount = serializers.SerializerMethodField()

    class Meta:
        model = InvoiceLine
        fields = ("kind", "description", "billable_metric", "quantity", "unit_amount", "amount", "period_start",
                  "period_end", "tiers")

    def get_billable_metric(self, line) -> str | None:
        return line.billable_metric.code if line.billable_metric_id else None

    def get_quantity(self, line) -> str:
        return format_quantity(line.quantity)

    def get_unit_amount(self, line) -> str | None:
        return _unit(line.unit_amount)

    def get_amount(self, line) -> str:
        return format_money(line.amount, line.invoice.currency)


MONEY_FIELDS = ("subtotal", "discount", "tax", "total", "amount_paid", "amount_due")


class InvoiceSerializer(serializers.ModelSerializer):
    customer = serializers.CharField(source="customer.external_id")
    subscription = serializers.SerializerMethodField()
    lines = InvoiceLineSerializer(many=True)

    class Meta:
        model = Invoice
        fields = ("id", "number", "status", "customer", "subscription", "currency", "issue_date", "due_date",
                  "period_start", "period_end", *MONEY_FIELDS, "lines", "billing_date", "reason", "needs_review",
                  "review_reasons", "approved_by", "approved_at", "finalized_at", "paid_at", "voided_at",
                  "customer_snapshot", "created_at")

    def get_subscription(self, invoice) -> str | None:
        return invoice.subscription.external_id if invoice.subscription_id else None

    def to_representation(self, invoice):
        data = super().to_representation(invoice)
        for name in MONEY_FIELDS:
            data[name] = format_money(getattr(invoice, name), invoice.currency)
        return data


class MarkPaidSerializer(serializers.Serializer):
    amount = serializers.DecimalField(max_digits=20, decimal_places=4, required=False, coerce_to_string=False)
    date = serializers.DateField(required=False)
    reference = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class BillingRunCreateSerializer(serializers.Serializer):
    as_of = serializers.DateField()
    finalize = serializers.BooleanField(required=False, default=True)


class BillingRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = BillingRun
        fields = ("id", "as_of", "status", "invoices_created", "lines_created", "invoices_flagged",
                  "invoices_finalized", "subscriptions_examined", "subscriptions_due", "error_count", "errors",
                  "triggered_by", "started_at", "finished_at")
