"""Thin Celery tasks: take ids, call a service."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from payments.models import AttemptStatus, PaymentAttempt
from payments.services import payment_attempt_execute, refund_execute

STALE_AFTER = timedelta(minutes=10)


@shared_task(name="payments.tasks.payment_attempt_execute", time_limit=120, soft_time_limit=90)
def payment_attempt_execute_task(attempt_id: int) -> str:
    return payment_attempt_execute(attempt_id=attempt_id).status


@shared_task(name="payments.tasks.refund_execute", time_limit=120, soft_time_limit=90)
def refund_execute_task(refund_id: int) -> str:
    return refund_execute(refund_id=refund_id).status


@shared_task(name="payments.tasks.sweep_pending_attempts", time_limit=600, soft_time_limit=540)
def sweep_pending_attempts() -> int:
    """Attempts left pending (worker died, broker down at enqueue) are charged again with their
    own idempotency key: Stripe replays the first answer if the charge already happened."""
    cutoff = timezone.now() - STALE_AFTER
    ids = list(PaymentAttempt.objects.filter(status=AttemptStatus.PENDING, updated_at__lt=cutoff,
                                             payment_method__isnull=False).values_list("pk", flat=True)[:500])
    for attempt_id in ids:
        payment_attempt_execute(attempt_id=attempt_id)
    return len(ids)
