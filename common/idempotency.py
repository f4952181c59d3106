"""Stored `Idempotency-Key` responses: their lifetime and the purge (the middleware is
billing_site/idempotency.py, which knows about API keys)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from common.models import IdempotencyKey


def ttl() -> timedelta:
    return timedelta(hours=getattr(settings, "IDEMPOTENCY_KEY_TTL_HOURS", 24))


def idempotency_keys_purge(*, now=None) -> int:
    """Delete stored responses older than the TTL (the beat job); returns how many."""
    cutoff = (now or timezone.now()) - ttl()
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted
