from __future__ import annotations

import zoneinfo

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from simple_history.models import HistoricalRecords

from common.models import TimestampedModel
from common.money import is_valid_currency
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
    metadata = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
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
