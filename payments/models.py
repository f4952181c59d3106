"""Payments: payment methods, charge attempts, payments (card or manual), refunds, inbound webhook events.

Money columns keep 4 decimal places like every other amount; each amount is quantized to its
currency's exponent by `common.money.quantize_money` before it is stored. Integer minor units
exist only inside `payments.gateway`.

Keys that make collection idempotent live in the database: one attempt number per invoice, one
payment per Stripe PaymentIntent, one refund per Stripe refund id, one webhook event per
(provider, event_id); the outbound idempotency keys are derived from our own row ids
(`payment_attempt:<id>`, `refund:<id>`)."""

from __future__ import annotations

import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from simple_history.models import HistoricalRecords

from common.models import TimestampedModel
from common.money import MONEY_FIELD, format_money_display


class PaymentMethod(TimestampedModel):
    """A card attached to the customer in Stripe (created by Stripe.js; card data never reaches us)."""

    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="payment_methods")
    stripe_payment_method = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=32, default="card")
    brand = models.CharField(max_length=32, blank=True)
    last4 = models.CharField(max_length=4, blank=True)
    exp_month = models.PositiveSmallIntegerField(null=True, blank=True)
    exp_year = models.PositiveSmallIntegerField(null=True, blank=True)
    is_default = models.BooleanField(default=False)
    detached_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["customer", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["customer"], condition=models.Q(is_default=True, detached_at__isnull=True),
                                    name="payment_method_one_default_per_customer"),
        ]

    def __str__(self) -> str:
        return f"{self.brand} •••• {self.last4}"


class AttemptStatus(models.TextChoices):
    PENDING = "pending", "pending"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"


class PaymentAttempt(TimestampedModel):
    """One off-session charge attempt of one invoice: the unit dunning counts and retries.
    Its id is the Stripe idempotency key (`payment_attempt:<id>`)."""

    invoice = models.ForeignKey("invoicing.Invoice", on_delete=models.PROTECT, related_name="payment_attempts")
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="payment_attempts")
    payment_method = models.ForeignKey(PaymentMethod, null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="attempts")
    attempt_number = models.PositiveIntegerField()
    amount = models.DecimalField(**MONEY_FIELD)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=12, choices=AttemptStatus.choices, default=AttemptStatus.PENDING, db_index=True)
    stripe_payment_intent = models.CharField(max_length=255, blank=True, db_index=True)
    stripe_charge = models.CharField(max_length=255, blank=True)
    failure_code = models.CharField(max_length=64, blank=True)
    decline_code = models.CharField(max_length=64, blank=True)
    advice_code = models.CharField(max_length=64, blank=True)
    network_advice_code = models.CharField(max_length=16, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    rule = models.CharField(max_length=120, blank=True, help_text="What triggered the attempt")
    actor = models.CharField(max_length=120, default="system")
    completed_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["invoice", "attempt_number"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "attempt_number"], name="payment_attempt_number_per_invoice"),
            # At most one attempt in flight per invoice: two finalize hooks, two "pay now" clicks or a
            # retry racing a webhook can never charge the same invoice twice at once.
            models.UniqueConstraint(fields=["invoice"], condition=models.Q(status="pending"),
                                    name="payment_attempt_one_pending_per_invoice"),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="payment_attempt_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.attempt_number} of {self.invoice_id} ({self.status})"

    @property
    def idempotency_key(self) -> str:
        return f"payment_attempt:{self.pk}"


class PaymentStatus(models.TextChoices):
    PENDING = "pending", "pending"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"
    REFUNDED = "refunded", "refunded"
    PARTIALLY_REFUNDED = "partially_refunded", "partially refunded"


class PaymentKind(models.TextChoices):
    CARD = "card", "card"
    BANK_TRANSFER = "bank_transfer", "bank transfer"
    CHECK = "check", "check"
    OTHER = "other", "other"


MANUAL_METHODS = (PaymentKind.BANK_TRANSFER, PaymentKind.CHECK, PaymentKind.OTHER)


class Payment(TimestampedModel):
    """Money received (or tried) against one invoice: a card charge (one per attempt) or a manual
    payment recorded by finance. Partial payments are allowed; a payment never exceeds what was due."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invoice = models.ForeignKey("invoicing.Invoice", on_delete=models.PROTECT, related_name="payments_received")
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="payments")
    amount = models.DecimalField(**MONEY_FIELD)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20, choices=PaymentStatus.choices, default=PaymentStatus.PENDING, db_index=True)
    method = models.CharField(max_length=16, choices=PaymentKind.choices)
    attempt = models.OneToOneField(PaymentAttempt, null=True, blank=True, on_delete=models.PROTECT, related_name="payment")
    stripe_payment_intent = models.CharField(max_length=255, blank=True)
    stripe_charge = models.CharField(max_length=255, blank=True)
    failure_code = models.CharField(max_length=64, blank=True)
    decline_code = models.CharField(max_length=64, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    paid_on = models.DateField(null=True, blank=True)
    reference = models.CharField(max_length=255, blank=True)
    amount_applied = models.DecimalField(default=0, **MONEY_FIELD,
                                         help_text="The part applied to the invoice (a late card payment on an invoice "
                                                   "already paid otherwise is refunded instead)")
    amount_refunded = models.DecimalField(default=0, **MONEY_FIELD)
    disputed_amount = models.DecimalField(default=0, **MONEY_FIELD)
    disputed_at = models.DateTimeField(null=True, blank=True)
    recorded_by = models.CharField(max_length=120, default="system")

    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["customer", "status"]), models.Index(fields=["invoice", "status"])]
        constraints = [
            models.UniqueConstraint(fields=["stripe_payment_intent"], condition=~models.Q(stripe_payment_intent=""),
                                    name="payment_unique_payment_intent"),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="payments_payment_amount_positive"),
            models.CheckConstraint(condition=models.Q(amount_refunded__lte=models.F("amount")),
                                   name="payment_refund_within_amount"),
        ]

    def __str__(self) -> str:
        return f"{self.method} {format_money_display(self.amount, self.currency)} ({self.status})"


class RefundStatus(models.TextChoices):
    PENDING = "pending", "pending"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"


class Refund(TimestampedModel):
    """Money returned on a payment: through Stripe for card payments (idempotency key
    `refund:<id>`), recorded as paid out by finance for manual ones."""

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    credit_note = models.ForeignKey("invoicing.CreditNote", null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="refunds")
    amount = models.DecimalField(**MONEY_FIELD)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=12, choices=RefundStatus.choices, default=RefundStatus.PENDING)
    reason = models.CharField(max_length=255, blank=True)
    stripe_refund = models.CharField(max_length=255, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    rule = models.CharField(max_length=120, blank=True)
    actor = models.CharField(max_length=120, default="system")

    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["stripe_refund"], condition=~models.Q(stripe_refund=""),
                                    name="refund_unique_stripe_refund"),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="refund_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"refund {format_money_display(self.amount, self.currency)} ({self.status})"

    @property
    def idempotency_key(self) -> str:
        return f"refund:{self.pk}"


class WebhookEventStatus(models.TextChoices):
    RECEIVED = "received", "received"
    PROCESSED = "processed", "processed"
    IGNORED = "ignored", "ignored"
    FAILED = "failed", "failed"


class WebhookEvent(models.Model):
    """An inbound provider event, stored once by (provider, event_id) before it is handled."""

    provider = models.CharField(max_length=20, default="stripe")
    event_id = models.CharField(max_length=255)
    type = models.CharField(max_length=120, db_index=True)
    payload = models.JSONField(encoder=DjangoJSONEncoder)
    status = models.CharField(max_length=12, choices=WebhookEventStatus.choices, default=WebhookEventStatus.RECEIVED)
    result = models.CharField(max_length=500, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    deliveries = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-received_at"]
        constraints = [models.UniqueConstraint(fields=["provider", "event_id"], name="webhook_event_unique")]

    def __str__(self) -> str:
        return f"{self.provider} {self.type} {self.event_id}"
