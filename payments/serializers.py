"""Payment representations (API.md "Payments"). Money as strings in the currency's exponent."""

from __future__ import annotations

from rest_framework import serializers

from common.money import MONEY_FIELD, format_money
from payments.models import MANUAL_METHODS, Payment, PaymentAttempt, PaymentMethod, Refund


class PaymentMethodSerializer(serializers.ModelSerializer):
    default = serializers.BooleanField(source="is_default")
    stripe_payment_method = serializers.CharField()

    class Meta:
        model = PaymentMethod
        fields = ("id", "stripe_payment_method", "type", "brand", "last4", "exp_month", "exp_year", "default",
                  "created_at")
        read_only_fields = fields


class PaymentMethodCreateSerializer(serializers.Serializer):
    stripe_payment_method = serializers.CharField(max_length=255)
    default = serializers.BooleanField(required=False, default=True)


class RefundSerializer(serializers.ModelSerializer):
    amount = serializers.SerializerMethodField()
    credit_note = serializers.SerializerMethodField()

    class Meta:
        model = Refund
        fields = ("id", "amount", "currency", "status", "reason", "stripe_refund", "credit_note", "created_at")
        read_only_fields = fields

    def get_amount(self, refund) -> str:
        return format_money(refund.amount, refund.currency)

    def get_credit_note(self, refund) -> str | None:
        return str(refund.credit_note_id) if refund.credit_note_id else None


class PaymentSerializer(serializers.ModelSerializer):
    invoice = serializers.CharField(source="invoice_id")
    customer = serializers.CharField(source="customer.external_id")
    amount = serializers.SerializerMethodField()
    amount_refunded = serializers.SerializerMethodField()
    attempt_number = serializers.SerializerMethodField()
    advice_code = serializers.SerializerMethodField()
    network_advice_code = serializers.SerializerMethodField()
    refunds = RefundSerializer(many=True, read_only=True)
    disputed = serializers.SerializerMethodField()

    class Meta:
        model = Payment
        fields = ("id", "invoice", "customer", "amount", "currency", "status", "method", "stripe_payment_intent",
                  "failure_code", "decline_code", "advice_code", "network_advice_code", "failure_message",
                  "attempt_number", "paid_on", "reference", "amount_refunded", "refunds", "disputed", "created_at")
        read_only_fields = fields

    def get_amount(self, payment) -> str:
        return format_money(payment.amount, payment.currency)

    def get_amount_refunded(self, payment) -> str:
        return format_money(payment.amount_refunded, payment.currency)

    def get_attempt_number(self, payment) -> int | None:
        return payment.attempt.attempt_number if payment.attempt_id else None

    def get_advice_code(self, payment) -> str:
        return payment.attempt.advice_code if payment.attempt_id else ""

    def get_network_advice_code(self, payment) -> str:
        return payment.attempt.network_advice_code if payment.attempt_id else ""

    def get_disputed(self, payment) -> bool:
        return payment.disputed_at is not None


class PaymentAttemptSerializer(serializers.ModelSerializer):
    invoice = serializers.CharField(source="invoice_id")
    amount = serializers.SerializerMethodField()

    class Meta:
        model = PaymentAttempt
        fields = ("id", "invoice", "attempt_number", "amount", "currency", "status", "stripe_payment_intent",
                  "failure_code", "decline_code", "advice_code", "network_advice_code", "failure_message", "rule",
                  "created_at", "completed_at")
        read_only_fields = fields

    def get_amount(self, attempt) -> str:
        return format_money(attempt.amount, attempt.currency)


class ManualPaymentSerializer(serializers.Serializer):
    amount = serializers.DecimalField(**MONEY_FIELD, coerce_to_string=False)
    date = serializers.DateField()
    method = serializers.ChoiceField(choices=[m.value for m in MANUAL_METHODS], required=False, default="bank_transfer")
    reference = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    currency = serializers.CharField(max_length=3, min_length=3, required=False)


class PayNowSerializer(serializers.Serializer):
    payment_method = serializers.IntegerField(required=False, help_text="One of the customer's payment methods "
                                                                        "(default: the default method)")


class UncollectibleReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
