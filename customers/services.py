from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from common.audit import actor_label, audit_record
from common.errors import ConflictError, ApplicationError
from customers.models import ApiKey, ApiScope, Customer

# last_used_at is written at most this often per key, so the ingestion hot path is not a write per call.
LAST_USED_RESOLUTION = timedelta(seconds=60)
KEY_PREFIX = "ll"


def _hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_create(*, name: str, scopes: list[str]) -> tuple[ApiKey, str]:
    """Create a key; returns (row, raw key). The raw key is shown once and never stored."""
    valid = set(ApiScope.values)
    unknown = [s for s in scopes if s not in valid]
    if unknown or not scopes:
        raise ApplicationError(
            f"Unknown or missing scopes {unknown or scopes}; choose from {sorted(valid)}.", fields={"scopes": ["invalid"]}
        )
    prefix = secrets.token_hex(4)
    raw_key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(name=name, prefix=prefix, key_hash=_hash_key(raw_key), scopes=sorted(set(scopes)))
    return key, raw_key


def api_key_authenticate(*, raw_key: str) -> ApiKey | None:
    key = ApiKey.objects.filter(key_hash=_hash_key(raw_key), revoked_at__isnull=True).first()
    if key is None:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)  # no history row for a timestamp
        key.last_used_at = now
    return key


def api_key_revoke(*, api_key: ApiKey, actor=None) -> ApiKey:
    with transaction.atomic():
        key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if key.revoked_at is None:
            key.revoked_at = timezone.now()
            key.save(update_fields=["revoked_at", "updated_at"])
            audit_record(action="api_key.revoked", obj=key, actor=actor_label(actor))
    return key


CUSTOMER_FIELDS = (
    "name", "currency", "email", "billing_email", "timezone", "country", "region", "address", "tax_id",
    "tax_exempt", "collection_method", "net_terms_days", "invoice_grace_period_days", "metadata",
)


def customer_create(*, external_id: str, actor=None, **fields) -> Customer:
    customer = Customer(external_id=external_id, **{k: v for k, v in fields.items() if k in CUSTOMER_FIELDS})
    customer.full_clean(validate_unique=False)
    try:
        with transaction.atomic():
            customer.save()
            audit_record(action="customer.created", obj=customer, actor=actor_label(actor))
    except IntegrityError as exc:
        raise ConflictError(f"Customer '{external_id}' already exists.", code="duplicate_external_id",
                            fields={"external_id": ["already exists"]}) from exc
    return customer


def customer_update(*, customer: Customer, actor=None, **fields) -> Customer:
    """Partial update. The currency is fixed once the customer has been invoiced (checked by invoicing)."""
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer.pk)
        changed = []
        for name, value in fields.items():
            if name in CUSTOMER_FIELDS and getattr(customer, name) != value:
                setattr(customer, name, value)
                changed.append(name)
        if "currency" in changed and _customer_has_billing_documents(customer):
            raise ConflictError("Currency cannot change once the customer has subscriptions or invoices.",
                                code="currency_locked", fields={"currency": ["locked"]})
        if changed:
            customer.full_clean(validate_unique=False)
            customer.save(update_fields=[*changed, "updated_at"])
            audit_record(action="customer.updated", obj=customer, actor=actor_label(actor), inputs={"fields": changed})
    return customer


def _customer_has_billing_documents(customer: Customer) -> bool:
    related = [rel for rel in Customer._meta.related_objects if rel.related_model._meta.app_label in {"subscriptions", "invoicing"}]
    return any(getattr(customer, rel.get_accessor_name()).exists() for rel in related if rel.one_to_many)
