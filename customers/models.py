from __future__ import annotations

import json
import zoneinfo

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from simple_history.models import HistoricalRecords

from common.models import TimestampedModel
from common.money import format_money_display, is_valid_currency
from customers.countries import is_valid_country


def validate_currency(value: str) -> None:
    if not is_valid_currency(value):
        raise ValidationError(f"'{value}' is not an ISO 4217 currency code.")


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"'{value}' is not an IANA time zone.")


def validate_country(value: str) -> None:
    if value and not is_valid_country(value):
        raise ValidationError(f"'{value}' is not an ISO 3166-1 alpha-2 country code.")


METADATA_MAX_KEYS = 50
METADATA_MAX_KEY_LENGTH = 40
METADATA_MAX_BYTES = 8 * 1024


def validate_metadata(value) -> None:
    """Free-form customer metadata is for references (CRM ids, notes), not storage: at most 50
    keys of at most 40 characters, and 8 KB as JSON."""
    if not isinstance(value, dict):
        raise ValidationError("metadata must be a JSON object.")
    if len(value) > METADATA_MAX_KEYS:
        raise ValidationError(f"metadata has {len(value)} keys; at most {METADATA_MAX_KEYS}.")
    if long_keys := [k for k in value if len(str(k)) > METADATA_MAX_KEY_LENGTH]:
        raise ValidationError(f"metadata keys are at most {METADATA_MAX_KEY_LENGTH} characters: {long_keys[0][:60]!r}.")
    size = len(json.dumps(value, cls=DjangoJSONEncoder).encode())
    if size > METADATA_MAX_BYTES:
        raise ValidationError(f"metadata is {size} bytes as JSON; at most {METADATA_MAX_BYTES}.")


class CollectionMethod(models.TextChoices):
    CHARGE_AUTOMATICALLY = "charge_automatically", "Charge automatically"
    SEND_INVOICE = "send_invoice", "Send invoice"


class Customer(TimestampedModel):
    external_id = models.CharField(max_length=255, unique=True)
    name = models.CharField(max_length=255)
    currency = models.CharField(max_length=3, validators=[validate_currency])
    email = models.EmailField(blank=True)
    billing_email = models.EmailField(blank=True)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    country = models.CharField(max_length=2, blank=True, validators=[validate_country])
    region = models.CharField(max_length=64, blank=True, help_text="State/province, for regional tax rates")
    address = models.TextField(blank=True)
    tax_id = models.CharField(max_length=64, blank=True, help_text="VAT/GST number; B2B in the EU gets reverse charge")
    tax_exempt = models.BooleanField(default=False)
    collection_method = models.CharField(max_length=32, choices=CollectionMethod.choices, default=CollectionMethod.SEND_INVOICE)
    net_terms_days = models.PositiveIntegerField(default=30)
    invoice_grace_period_days = models.PositiveIntegerField(default=0, help_text="Days a draft waits before it auto-finalizes")
    metadata = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder, validators=[validate_metadata])
    stripe_customer_id = models.CharField(max_length=64, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["external_id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(currency__regex=r"^[A-Z]{3}$"), name="customer_currency_iso"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.external_id})"

    @property
    def invoice_email(self) -> str:
        return self.billing_email or self.email


class ApiScope(models.TextChoices):
    USAGE_WRITE = "usage:write", "usage:write"
    BILLING_READ = "billing:read", "billing:read"
    BILLING_WRITE = "billing:write", "billing:write"
    ADMIN = "admin", "admin"


class ApiKey(TimestampedModel):
    """A scoped API key. Only a SHA-256 hash of the secret is stored; `prefix` identifies it."""

    name = models.CharField(max_length=120)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords(excluded_fields=["last_used_at"])

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return ApiScope.ADMIN in self.scopes or scope in self.scopes


# --- credits -------------------------------------------------------------------------------------

CREDIT_MONEY_FIELD = dict(max_digits=20, decimal_places=4)  # quantized to the currency's exponent


class CreditGrant(TimestampedModel):
    """Prepaid credit: `amount` granted in `currency`, `remaining` left to spend on invoices (after
    tax and after the credit balance). Consumed earliest expiry first; unusable from `expires_at`."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="credit_grants")
    currency = models.CharField(max_length=3, validators=[validate_currency])
    amount = models.DecimalField(**CREDIT_MONEY_FIELD)
    remaining = models.DecimalField(**CREDIT_MONEY_FIELD)
    expires_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=255)

    history = HistoricalRecords()

    class Meta:
        ordering = ["customer", "expires_at", "pk"]
        indexes = [models.Index(fields=["customer", "currency"])]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="credit_grant_amount_positive"),
            models.CheckConstraint(condition=models.Q(remaining__gte=0) & models.Q(remaining__lte=models.F("amount")),
                                   name="credit_grant_remaining_range"),
        ]

    def __str__(self) -> str:
        return f"{format_money_display(self.amount, self.currency)} prepaid for {self.customer.external_id}"


class CreditGrantUsage(models.Model):
    """Part of a grant spent on one invoice; unique per (grant, invoice) for idempotency."""

    grant = models.ForeignKey(CreditGrant, on_delete=models.PROTECT, related_name="usages")
    invoice_id = models.CharField(max_length=64)
    amount = models.DecimalField(**CREDIT_MONEY_FIELD)
    created_at = models.DateTimeField(auto_now_add=True)
    returned_at = models.DateTimeField(null=True, blank=True, help_text="Given back to the grant when the invoice was voided")

    history = HistoricalRecords()

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["invoice_id"])]
        constraints = [
            models.UniqueConstraint(fields=["grant", "invoice_id"], name="credit_grant_usage_once_per_invoice"),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="credit_grant_usage_positive"),
        ]


class BalanceTransactionKind(models.TextChoices):
    CREDIT_NOTE = "credit_note", "credit note"
    APPLIED_TO_INVOICE = "applied_to_invoice", "applied to invoice"
    INVOICE_CREDIT = "invoice_credit", "net-credit invoice"
    ADJUSTMENT = "adjustment", "adjustment"
    INVOICE_VOID = "invoice_void", "voided invoice: credit returned"


class CustomerBalanceTransaction(models.Model):
    """The credit balance ledger, one currency per row. `amount` is signed from the customer's
    side: positive adds credit (a credit note, a net-credit invoice, a positive adjustment),
    negative uses it (applied to an invoice, a negative adjustment). The balance is the sum and
    never goes below zero (services check it under the customer row lock). Append-only."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="balance_transactions")
    currency = models.CharField(max_length=3, validators=[validate_currency])
    amount = models.DecimalField(**CREDIT_MONEY_FIELD)
    kind = models.CharField(max_length=24, choices=BalanceTransactionKind.choices)
    invoice_id = models.CharField(max_length=64, null=True, blank=True)
    credit_note_id = models.CharField(max_length=64, null=True, blank=True)
    description = models.CharField(max_length=255, blank=True)
    actor = models.CharField(max_length=120, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["customer", "currency"])]
        constraints = [
            models.CheckConstraint(condition=~models.Q(amount=0), name="balance_txn_amount_nonzero"),
            models.CheckConstraint(
                condition=~models.Q(kind="applied_to_invoice") | (models.Q(amount__lt=0) & models.Q(invoice_id__isnull=False)),
                name="balance_txn_applied_negative_with_invoice",
            ),
            models.CheckConstraint(
                condition=~models.Q(kind__in=["credit_note", "invoice_credit"]) | models.Q(amount__gt=0),
                name="balance_txn_credit_positive",
            ),
            models.UniqueConstraint(fields=["invoice_id", "kind"],
                                    condition=models.Q(kind__in=["applied_to_invoice", "invoice_credit", "invoice_void"]),
                                    name="balance_txn_once_per_invoice"),
            models.UniqueConstraint(fields=["credit_note_id"], condition=models.Q(kind="credit_note"),
                                    name="balance_txn_once_per_credit_note"),
        ]
        verbose_name = "customer balance transaction"

    def __str__(self) -> str:
        return f"{self.kind} {format_money_display(self.amount, self.currency)} ({self.customer.external_id})"
