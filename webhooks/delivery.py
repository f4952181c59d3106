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
from webhooks.services import webhook_endpoint_disable_failing

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
    """The signed body; `data` is built once and frozen as JSON text (webhooks/payloads.py), so every
    retry and every endpoint get the same bytes. The first writer wins."""
    if event.data is None:
        data = json.dumps(event_data(object_type=event.object_type, object_id=event.object_id, inputs=event.inputs),
                          separators=(",", ":"), cls=DjangoJSONEncoder)
        if WebhookEvent.objects.filter(pk=event.pk, data__isnull=True).update(data=data):
            event.data = data
        else:
            event.data = WebhookEvent.objects.values_list("data", flat=True).get(pk=event.pk)
    envelope = json.dumps({"id": event.webhook_id, "type": event.type, "created": event.created_at.isoformat()},
                          separators=(",", ":"))
    return f'{envelope[:-1]},"data":{event.data}}}'.encode()


def _claim(*, as_of: datetime, batch_size: int) -> list[WebhookDelivery]:
    with transaction.atomic():
        ids = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=as_of, endpoint__enabled=True)
            .order_by("next_attempt_at", "pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return []
        WebhookDelivery.objects.filter(pk__in=ids).update(next_attempt_at=as_of + CLAIM_LEASE)
    by_id = WebhookDelivery.objects.select_related("endpoint", "event").in_bulk(ids)
    claimed, endpoints = [by_id[pk] for pk in ids], {}
    for delivery in claimed:  # one endpoint instance per endpoint, so its failure streak stays current in memory
        delivery.endpoint = endpoints.setdefault(delivery.endpoint_id, delivery.endpoint)
    return claimed


def send(delivery: WebhookDelivery, *, pools: transport.Pools | None = None) -> transport.SendResult:
    body = event_body(delivery.event)
    headers = signing.headers(secret=delivery.endpoint.secret, msg_id=delivery.event.webhook_id,
                              timestamp=int(time.time()), body=body)
    return transport.post(delivery.endpoint.url, body=body, headers=headers, pools=pools)


@dataclass
class AttemptResult:
    result: transport.SendResult
    endpoint_id: object = None
    endpoint_disabled: bool = False


def attempt(*, delivery: WebhookDelivery, as_of: datetime, manual: bool = False,
            pools: transport.Pools | None = None) -> AttemptResult:
    """One attempt of one delivery (loaded with its endpoint and event; claimed by this sweeper, or a manual
    retry), logged; reschedules (or finishes) it and tracks the endpoint's health."""
    endpoint = delivery.endpoint
    if not manual and not endpoint.enabled:  # disabled after this batch was claimed: leave it waiting
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=as_of)
        return AttemptResult(result=transport.SendResult(None, 0, error="endpoint disabled"), endpoint_id=endpoint.pk)
    try:
        result = send(delivery, pools=pools)
    except Exception as exc:  # noqa: BLE001  (a payload that cannot be built is a failed attempt, logged)
        result = transport.SendResult(None, 0, error=f"{type(exc).__name__}: {exc}"[:500])
    now = timezone.now()
    with transaction.atomic():
        WebhookAttempt.objects.create(delivery=delivery, attempted_at=now, manual=manual,
                                      status_code=result.status_code, latency_ms=result.latency_ms,
                                      response_excerpt=result.response_excerpt, error=result.error)
        changes = {"last_attempt_at": now, "last_status_code": result.status_code}
        if not manual:
            changes["attempt_count"] = delivery.attempt_count + 1
        if result.ok:
            changes.update(status=DeliveryStatus.SUCCEEDED, delivered_at=now, next_attempt_at=None)
        elif not manual:
            if changes["attempt_count"] >= MAX_ATTEMPTS:
                changes.update(status=DeliveryStatus.FAILED, next_attempt_at=None)
            else:
                changes["next_attempt_at"] = as_of + RETRY_DELAYS[changes["attempt_count"]]
        # A plain UPDATE: the row is ours by the claim (a manual retry racing a sweep is at worst a duplicate send).
        WebhookDelivery.objects.filter(pk=delivery.pk).update(**changes)
        for name, value in changes.items():
            setattr(delivery, name, value)
        disabled = _endpoint_health(endpoint=endpoint, ok=result.ok, as_of=as_of)
    return AttemptResult(result=result, endpoint_id=endpoint.pk, endpoint_disabled=disabled)


def _endpoint_health(*, endpoint: WebhookEndpoint, ok: bool, as_of: datetime) -> bool:
    """Track the endpoint's failing streak; True when this failure disabled it. (The loaded `endpoint` only
    saves queries: the conditional UPDATEs decide.)"""
    endpoint_id = endpoint.pk
    if ok:
        if endpoint.failing_since is not None:
            WebhookEndpoint.objects.filter(pk=endpoint_id, failing_since__isnull=False).update(failing_since=None)
            endpoint.failing_since = None
        return False
    if endpoint.failing_since is None:
        WebhookEndpoint.objects.filter(pk=endpoint_id, failing_since__isnull=True).update(failing_since=as_of)
        endpoint.failing_since = as_of
    limit = timedelta(days=settings.WEBHOOKS_DISABLE_AFTER_DAYS)
    if WebhookEndpoint.objects.filter(pk=endpoint_id, enabled=True, failing_since__lte=as_of - limit).exists():
        webhook_endpoint_disable_failing(endpoint=WebhookEndpoint.objects.get(pk=endpoint_id), as_of=as_of)
        return True
    return False


def webhooks_deliver_due(*, as_of: datetime | None = None, batch_size: int = 50,
                         max_seconds: float | None = None) -> SweepResult:
    """One outbox sweep: every delivery due by `as_of` (default now) gets one attempt."""
    as_of = as_of or timezone.now()
    started = time.monotonic()
    result = SweepResult()
    pools = transport.Pools()  # keep-alive connections per receiver for this sweep
    try:
        while max_seconds is None or time.monotonic() - started < max_seconds:
            claimed = _claim(as_of=as_of, batch_size=batch_size)
            if not claimed:
                break
            _attempt_all(claimed, as_of=as_of, pools=pools, result=result)
    finally:
        pools.close()
    return result


def _attempt_all(claimed: list[WebhookDelivery], *, as_of: datetime, pools, result: SweepResult) -> None:
    for delivery in claimed:
        outcome = attempt(delivery=delivery, as_of=as_of, pools=pools)
        result.attempted += 1
        if outcome.result.ok:
            result.succeeded += 1
        else:
            result.failed += 1
        if outcome.endpoint_disabled:
            result.endpoints_disabled.append(str(outcome.endpoint_id))
