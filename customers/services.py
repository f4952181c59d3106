from __future__ import annotations

import hashlib
import logging
import secrets
import time
from datetime import timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from common.audit import actor_label, audit_record
from common.locks import row_lock
from common.redis import RedisError, redis_client
from common.errors import ApplicationError, ConflictError
from common.money import money_input, quantize_money
from customers.locks import customer_lock
from customers.models import (ApiKey, ApiScope, BalanceTransactionKind, CreditGrant, CreditGrantUsage, Customer,
                              CustomerBalanceTransaction)
from customers.selectors import credit_grants_usable, customer_credit_balance

# last_used_at is written at most this often per key, so the ingestion hot path is not a write per call.
LAST_USED_RESOLUTION = timedelta(seconds=60)
KEY_PREFIX = "ll"
logger = logging.getLogger(__name__)


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


# Authenticated keys are remembered per process for a few seconds: ingestion posts thousands of events
# a second and a key lookup per request was a measurable share of each. Each cached entry carries the
# Redis key-set version it was read under; a revocation bumps that version on commit, so every process
# drops its cache on its next request (a Redis GET, far cheaper than the key lookup). Without Redis the
# cache is not used at all: a revoked key never outlives its revocation by more than a request.
KEY_CACHE_SECONDS = 10.0
KEY_CACHE_MAX = 1024
KEY_VERSION_REDIS_KEY = "ledgerline:api-keys:version"
_key_cache: dict[str, tuple[float, bytes, ApiKey]] = {}


def _key_cache_clear() -> None:
    _key_cache.clear()


def _key_set_version() -> bytes | None:
    try:
        return redis_client().get(KEY_VERSION_REDIS_KEY) or b"0"
    except RedisError:
        return None


def _key_set_changed() -> None:
    _key_cache_clear()
    try:
        redis_client().incr(KEY_VERSION_REDIS_KEY)
    except RedisError:  # other processes fall back on KEY_CACHE_SECONDS
        logger.warning("API key revocation: Redis unavailable, other processes notice within %ss", KEY_CACHE_SECONDS)


_FETCH = object()


def _cache_entry(key_hash: str, clock: float) -> tuple[float, bytes, ApiKey] | None:
    """This process's entry for the key, if younger than KEY_CACHE_SECONDS: (read at, version, key)."""
    cached = _key_cache.get(key_hash)
    return cached if cached and clock - cached[0] < KEY_CACHE_SECONDS else None


def api_key_cached(*, raw_key: str) -> ApiKey | None:
    """The key this process authenticated for `raw_key` within KEY_CACHE_SECONDS, not yet checked against
    the key-set version (api_key_authenticate does that), or None. No I/O."""
    cached = _cache_entry(_hash_key(raw_key), time.monotonic())
    return cached[2] if cached else None


def api_key_authenticate(*, raw_key: str, version_reply=_FETCH) -> ApiKey | None:
    """The live key for `raw_key`, or None. `version_reply`: the caller's own GET of KEY_VERSION_REDIS_KEY
    (None when that key does not exist yet), made in a round trip it needed anyway (the single-event fast
    path reads it with its rate-limit count); by default it is read here."""
    key_hash = _hash_key(raw_key)
    clock = time.monotonic()
    cached = _cache_entry(key_hash, clock)
    version = _key_set_version() if version_reply is _FETCH else version_reply or b"0"
    if cached and version is not None and cached[1] == version:
        key = cached[2]
    else:
        key = ApiKey.objects.filter(key_hash=key_hash, revoked_at__isnull=True).first()
        if key is None:
            _key_cache.pop(key_hash, None)
            return None
        if len(_key_cache) >= KEY_CACHE_MAX:
            _key_cache.clear()
        if version is not None:
            _key_cache[key_hash] = (clock, version, key)
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)  # no history row for a timestamp
        key.last_used_at = now
    return key


def api_key_revoke(*, api_key: ApiKey, actor=None) -> ApiKey:
    with transaction.atomic():
        key = row_lock(ApiKey, api_key.pk)
        if key.revoked_at is None:
            key.revoked_at = timezone.now()
            key.save(update_fields=["revoked_at", "updated_at"])
            _key_cache_clear()  # this process at once
            transaction.on_commit(_key_set_changed)  # every other process on its next request
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
    """Partial update. The currency is fixed once the customer has subscriptions or invoices (409)."""
    with transaction.atomic():
        customer = customer_lock(customer.pk)
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
    # A model of those apps that is not a billing document says so (`locks_customer_currency = False`).
    related = [rel for rel in Customer._meta.related_objects if rel.related_model._meta.app_label in {"subscriptions", "invoicing"}
               and getattr(rel.related_model, "locks_customer_currency", True)]
    return any(getattr(customer, rel.get_accessor_name()).exists() for rel in related if rel.one_to_many)


# --- credits -------------------------------------------------------------------------------------
#
# Every credit write locks the customer row first (`customers.locks.customer_lock`), so balance checks and grant
# consumption for one customer are serialized; then grants are locked in pk order. Each invoice
# consumes credit at most once: the ledger is unique on (invoice_id, kind) and grant usages on
# (grant, invoice_id); a repeat call returns what the first one applied.

def _balance(customer: Customer, currency: str) -> Decimal:
    return customer_credit_balance(customer=customer, currency=currency)


def prepaid_credit_grant(*, customer: Customer, currency: str, amount, reason: str, expires_at=None,
                         actor=None) -> CreditGrant:
    """Grant prepaid credit in `currency` (it only ever pays invoices in that currency)."""
    currency = (currency or "").upper()
    amount = money_input(amount, currency=currency, field="amount")
    if not (reason or "").strip():
        raise ApplicationError("A reason is required.", fields={"reason": ["required"]})
    with transaction.atomic():
        customer = customer_lock(customer.pk)
        grant = CreditGrant.objects.create(customer=customer, currency=currency, amount=amount, remaining=amount,
                                           expires_at=expires_at, reason=reason.strip())
        audit_record(action="prepaid_credit.granted", obj=grant, actor=actor_label(actor),
                     inputs={"customer": customer.external_id, "currency": currency, "amount": amount,
                             "expires_at": expires_at, "reason": grant.reason})
    return grant


def prepaid_credit_consume(*, customer: Customer, currency: str, amount, invoice_id, on=None, actor=None) -> Decimal:
    """Spend up to `amount` of the customer's prepaid credit in `currency` on invoice `invoice_id`,
    earliest expiry first (grants expired at `on`, default now, are skipped). Returns what was
    spent (≤ amount, ≤ available). Idempotent per invoice: a repeat returns the first result."""
    currency = (currency or "").upper()
    amount = money_input(amount, currency=currency, field="amount", positive=False)
    invoice_id = str(invoice_id)
    with transaction.atomic():
        customer = customer_lock(customer.pk)
        previous = CreditGrantUsage.objects.filter(grant__customer=customer, grant__currency=currency,
                                                   invoice_id=invoice_id)
        if previous.exists():
            return quantize_money(sum((u.amount for u in previous), Decimal(0)), currency)
        left = amount
        spent = []
        for grant in credit_grants_usable(customer=customer, currency=currency, on=on).select_for_update():
            if left <= 0:
                break
            take = min(grant.remaining, left)
            grant.remaining -= take
            grant.save(update_fields=["remaining", "updated_at"])
            CreditGrantUsage.objects.create(grant=grant, invoice_id=invoice_id, amount=take)
            left -= take
            spent.append({"grant": grant.pk, "amount": take, "remaining": grant.remaining})
        total = quantize_money(amount - left, currency)
        if spent:
            audit_record(action="prepaid_credit.consumed", obj=customer, actor=actor_label(actor or "billing"),
                         rule="earliest expiry first",
                         inputs={"invoice_id": invoice_id, "currency": currency, "requested": amount, "spent": total,
                                 "grants": spent})
    return total


def credit_balance_apply(*, customer: Customer, currency: str, amount, invoice_id, actor=None) -> Decimal:
    """Use up to `amount` of the customer's credit balance in `currency` on invoice `invoice_id`
    (one `applied_to_invoice` ledger row, negative). Returns what was applied (≤ amount, ≤ balance).
    Idempotent per invoice: a repeat returns the first result. Credit in other currencies is
    never touched."""
    currency = (currency or "").upper()
    amount = money_input(amount, currency=currency, field="amount", positive=False)
    invoice_id = str(invoice_id)
    with transaction.atomic():
        customer = customer_lock(customer.pk)
        previous = CustomerBalanceTransaction.objects.filter(kind=BalanceTransactionKind.APPLIED_TO_INVOICE,
                                                             invoice_id=invoice_id).first()
        if previous is not None:
            if previous.customer_id != customer.pk or previous.currency != currency:
                raise ConflictError("Credit was already applied to this invoice for another customer or currency.",
                                    code="credit_invoice_mismatch")
            return -previous.amount
        applied = min(amount, max(_balance(customer, currency), Decimal(0)))
        if applied > 0:
            txn = CustomerBalanceTransaction.objects.create(
                customer=customer, currency=currency, amount=-applied, kind=BalanceTransactionKind.APPLIED_TO_INVOICE,
                invoice_id=invoice_id, description=f"Applied to invoice {invoice_id}", actor=actor_label(actor or "billing"))
            audit_record(action="credit_balance.applied", obj=txn, actor=actor_label(actor or "billing"),
                         inputs={"invoice_id": invoice_id, "currency": currency, "requested": amount, "applied": applied})
    return quantize_money(applied, currency)


def _credit_once(*, customer, currency, amount, kind, lookup: dict, description: str, actor, action: str):
    currency = (currency or "").upper()
    amount = money_input(amount, currency=currency, field="amount")
    with transaction.atomic():
        customer = customer_lock(customer.pk)
        previous = CustomerBalanceTransaction.objects.filter(kind=kind, **lookup).first()
        if previous is not None:
            if (previous.customer_id, previous.currency, previous.amount) != (customer.pk, currency, amount):
                raise ConflictError("This document already credited the balance with other values.",
                                    code="credit_already_recorded")
            return previous
        txn = CustomerBalanceTransaction.objects.create(customer=customer, currency=currency, amount=amount, kind=kind,
                                                        description=description, actor=actor_label(actor), **lookup)
        audit_record(action=action, obj=txn, actor=actor_label(actor), inputs={"currency": currency, "amount": amount, **lookup})
    return txn


def credit_balance_credit_from_invoice(*, customer: Customer, currency: str, amount, invoice_id,
                                       actor=None) -> CustomerBalanceTransaction:
    """A net-credit invoice (total < 0, `InvoiceTotals.balance_credit`) credits the balance. Idempotent per invoice."""
    return _credit_once(customer=customer, currency=currency, amount=amount, kind=BalanceTransactionKind.INVOICE_CREDIT,
                        lookup={"invoice_id": str(invoice_id)}, description=f"Net credit of invoice {invoice_id}",
                        actor=actor or "billing", action="credit_balance.invoice_credit")


def credit_balance_credit_from_credit_note(*, customer: Customer, currency: str, amount, credit_note_id,
                                           invoice_id=None, actor=None) -> CustomerBalanceTransaction:
    """A credit note with a credit-balance outcome. Idempotent per credit note."""
    lookup = {"credit_note_id": str(credit_note_id)}
    txn = _credit_once(customer=customer, currency=currency, amount=amount, kind=BalanceTransactionKind.CREDIT_NOTE,
                       lookup=lookup, description=f"Credit note {credit_note_id}", actor=actor or "billing",
                       action="credit_balance.credit_note")
    if invoice_id is not None and txn.invoice_id is None:
        CustomerBalanceTransaction.objects.filter(pk=txn.pk).update(invoice_id=str(invoice_id))
        txn.invoice_id = str(invoice_id)
    return txn


def invoice_credits_return(*, customer: Customer, currency: str, invoice_id, actor=None) -> dict[str, Decimal]:
    """A voided invoice gives back what it took: the credit balance applied to it (one
    `invoice_void` ledger row) and the prepaid credit it spent, onto the same grants (an expired
    grant stays unusable). Usages are marked returned and the ledger row is unique per invoice, so a
    repeat changes nothing."""
    currency = (currency or "").upper()
    invoice_id = str(invoice_id)
    with transaction.atomic():
        customer = customer_lock(customer.pk)
        prepaid = Decimal(0)
        usages = CreditGrantUsage.objects.select_for_update().filter(
            grant__customer=customer, grant__currency=currency, invoice_id=invoice_id, returned_at__isnull=True
        ).order_by("grant_id")
        now = timezone.now()
        for usage in usages:
            grant = row_lock(CreditGrant, usage.grant_id)
            grant.remaining += usage.amount
            grant.save(update_fields=["remaining", "updated_at"])
            usage.returned_at = now
            usage.save(update_fields=["returned_at"])
            prepaid += usage.amount
        balance = Decimal(0)
        ledger = CustomerBalanceTransaction.objects.filter(customer=customer, currency=currency, invoice_id=invoice_id)
        applied = ledger.filter(kind=BalanceTransactionKind.APPLIED_TO_INVOICE).first()
        if applied is not None and not ledger.filter(kind=BalanceTransactionKind.INVOICE_VOID).exists():
            balance = -applied.amount
            CustomerBalanceTransaction.objects.create(
                customer=customer, currency=currency, amount=balance, kind=BalanceTransactionKind.INVOICE_VOID,
                invoice_id=invoice_id, description=f"Invoice {invoice_id} voided", actor=actor_label(actor))
        returned = {"credit_balance": quantize_money(balance, currency), "prepaid": quantize_money(prepaid, currency)}
        if prepaid or balance:
            audit_record(action="invoice_credits.returned", obj=customer, actor=actor_label(actor), rule="invoice voided",
                         inputs={"invoice_id": invoice_id, "currency": currency, **returned})
    return returned


def balance_adjust(*, customer: Customer, currency: str, amount, description: str,
                   actor=None) -> CustomerBalanceTransaction:
    """A manual adjustment by finance: positive adds credit, negative removes it. The balance never
    goes below zero (409)."""
    currency = (currency or "").upper()
    amount = money_input(amount, currency=currency, field="amount", positive=False, allow_negative=True)
    if amount == 0:
        raise ApplicationError("amount must not be 0.", fields={"amount": ["zero"]})
    if not (description or "").strip():
        raise ApplicationError("A description is required.", fields={"description": ["required"]})
    with transaction.atomic():
        customer = customer_lock(customer.pk)
        balance = _balance(customer, currency)
        if balance + amount < 0:
            raise ConflictError(f"The {currency} credit balance is {balance}; it cannot go below zero.",
                                code="insufficient_credit_balance", fields={"amount": ["exceeds balance"]})
        txn = CustomerBalanceTransaction.objects.create(customer=customer, currency=currency, amount=amount,
                                                        kind=BalanceTransactionKind.ADJUSTMENT,
                                                        description=description.strip(), actor=actor_label(actor))
        audit_record(action="credit_balance.adjusted", obj=txn, actor=actor_label(actor),
                     actor_user=actor if getattr(actor, "is_authenticated", False) else None,
                     inputs={"currency": currency, "amount": amount, "balance_before": balance,
                             "description": txn.description})
    return txn
