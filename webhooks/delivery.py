"""The delivery sweeper: every pending delivery due by `as_of` gets one attempt.

Concurrency: a sweep claims a batch of due deliveries in a short transaction (`SELECT … FOR UPDATE SKIP
LOCKED`, then pushes their `next_attempt_at` a lease ahead) and sends them outside any transaction, so two
sweepers at once (beat + `deliver_webhooks`, or two workers) never send the same attempt twice, and a
sweeper that dies mid-batch leaves its claims to be retried when the lease expires (at-least-once).

Schedule (DESIGN.md §14): attempt 1 at once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h after each
failure (8 attempts over about 27.5 h); a non-2xx answer, a timeout or a refused target is a failure.
After the last one the delivery is `failed` (a manual retry may still send it). An endpoint whose
attempts have failed for WEBHOOKS_DISABLE_AFTER_DAYS (5) days with no success in between is disabled;
finance is told (audit row + e-mail to the finance admins). Its pending deliveries wait, and go out
if it is enabled again. Times for the schedule are `as_of` (the command's clock); the signed
`webhook-timestamp` is the real time of sending, as receivers check it against their clock."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from webhooks import signing, transport
from webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from webhooks.payloads import event_data

RETRY_DELAYS = (timedelta(0), timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
                timedelta(hours=5), timedelta(hours=10), timedelta(hours=10))
MAX_ATTEMPTS = len(RETRY_DELAYS)
CLAIM_LEASE = timedelta(minutes=5)


@dataclass
class SweepResult:
    attempted: int = 0
    succeeded: int = 0
    failed: int = 0
    endpoints_disabled: list[str] = field(default_factory=list)


def event_body(event: WebhookEvent) -> bytes:
    """The signed body; `data` is built once and frozen (webhooks/payloads.py)."""
    if event.data is None:
        data = json.loads(json.dumps(event_data(object_type=event.object_type, object_id=event.object_id,
                                                inputs=event.inputs), cls=DjangoJSONEncoder))
        WebhookEvent.objects.filter(pk=event.pk, data__isnull=True).update(data=data)
        event.data = WebhookEvent.objects.values_list("data", flat=True).get(pk=event.pk)
    body = {"id": event.webhook_id, "type": event.type, "created": event.created_at.isoformat(), "data": event.data}
    return json.dumps(body, separators=(",", ":"), cls=DjangoJSONEncoder).encode()


def _claim(*, as_of: datetime, batch_size: int) -> list:
    with transaction.atomic():
        ids = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=as_of, endpoint__enabled=True)
            .order_by("next_attempt_at", "pk").values_list("pk", flat=True)[:batch_size])
        if ids:
            WebhookDelivery.objects.filter(pk__in=ids).update(next_attempt_at=as_of + CLAIM_LEASE)
    return ids


def send(delivery: WebhookDelivery) -> transport.SendResult:
    body = event_body(delivery.event)
    headers = signing.headers(secret=delivery.endpoint.secret, msg_id=delivery.event.webhook_id,
                              timestamp=int(time.time()), body=body)
    return transport.post(delivery.endpoint.url, body=body, headers=headers)


@dataclass
class AttemptResult:
    result: transport.SendResult
    endpoint_id: object = None
    endpoint_disabled: bool = False


def attempt(*, delivery_id, as_of: datetime, manual: bool = False) -> AttemptResult:
    """One attempt of one delivery, logged; reschedules (or finishes) it and tracks the endpoint's health."""
    delivery = WebhookDelivery.objects.select_related("endpoint", "event").get(pk=delivery_id)
    if not manual and not delivery.endpoint.enabled:  # disabled after this batch was claimed: leave it waiting
        WebhookDelivery.objects.filter(pk=delivery_id).update(next_attempt_at=as_of)
        return AttemptResult(result=transport.SendResult(None, 0, error="endpoint disabled"),
                             endpoint_id=delivery.endpoint_id)
    try:
        result = send(delivery)
    except Exception as exc:  # noqa: BLE001  (a payload that cannot be built is a failed attempt, logged)
        result = transport.SendResult(None, 0, error=f"{type(exc).__name__}: {exc}"[:500])
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
        WebhookAttempt.objects.create(delivery=delivery, attempted_at=timezone.now(), manual=manual,
                                      status_code=result.status_code, latency_ms=result.latency_ms,
                                      response_excerpt=result.response_excerpt, error=result.error)
        delivery.last_attempt_at = timezone.now()
        delivery.last_status_code = result.status_code
        updated = ["last_attempt_at", "last_status_code"]
        if not manual:
            delivery.attempt_count += 1
            updated.append("attempt_count")
        if result.ok:
            delivery.status, delivery.delivered_at, delivery.next_attempt_at = (
                DeliveryStatus.SUCCEEDED, timezone.now(), None)
            updated += ["status", "delivered_at", "next_attempt_at"]
        elif not manual:
            if delivery.attempt_count >= MAX_ATTEMPTS:
                delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
            else:
                delivery.next_attempt_at = as_of + RETRY_DELAYS[delivery.attempt_count]
            updated += ["status", "next_attempt_at"]
        delivery.save(update_fields=updated)
        disabled = _endpoint_health(endpoint_id=delivery.endpoint_id, ok=result.ok, as_of=as_of)
    return AttemptResult(result=result, endpoint_id=delivery.endpoint_id, endpoint_disabled=disabled)


def _endpoint_health(*, endpoint_id, ok: bool, as_of: datetime) -> bool:
    """Track the endpoint's failing streak; True when this failure disabled it."""
    if ok:
        WebhookEndpoint.objects.filter(pk=endpoint_id, failing_since__isnull=False).update(failing_since=None)
        return False
    WebhookEndpoint.objects.filter(pk=endpoint_id, failing_since__isnull=True).update(failing_since=as_of)
    limit = timedelta(days=settings.WEBHOOKS_DISABLE_AFTER_DAYS)
    if WebhookEndpoint.objects.filter(pk=endpoint_id, enabled=True, failing_since__lte=as_of - limit).exists():
        from webhooks.services import webhook_endpoint_disable_failing

        webhook_endpoint_disable_failing(endpoint=WebhookEndpoint.objects.get(pk=endpoint_id), as_of=as_of)
        return True
    return False


def webhooks_deliver_due(*, as_of: datetime | None = None, batch_size: int = 50,
                         max_seconds: float | None = None) -> SweepResult:
    """One outbox sweep: every delivery due by `as_of` (default now) gets one attempt."""
    as_of = as_of or timezone.now()
    started = time.monotonic()
    result = SweepResult()
    while max_seconds is None or time.monotonic() - started < max_seconds:
        ids = _claim(as_of=as_of, batch_size=batch_size)
        if not ids:
            break
        for delivery_id in ids:
            outcome = attempt(delivery_id=delivery_id, as_of=as_of)
            result.attempted += 1
            if outcome.result.ok:
                result.succeeded += 1
            else:
                result.failed += 1
            if outcome.endpoint_disabled:
                result.endpoints_disabled.append(str(outcome.endpoint_id))
    return result
