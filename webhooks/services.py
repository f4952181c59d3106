"""Webhook endpoints and deliveries: the writes (API, admin and the sweeper call these)."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from common.audit import actor_label, actor_user, audit_record
from common.errors import ApplicationError, ConflictError
from common.groups import FINANCE_ADMIN
from common.locks import row_lock
from webhooks import signing, transport
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.outbox import EVENT_TYPES


def clean_url(url: str) -> str:
    reason = transport.url_refusal(url, resolve=False)
    if reason:
        raise ApplicationError(f"url: {reason}.", fields={"url": [reason]})
    return url


def clean_events(events) -> list[str]:
    if events is None:
        return []
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise ApplicationError("events: a list of event types.", fields={"events": ["a list of event types"]})
    unknown = sorted(set(events) - set(EVENT_TYPES) - {"*"})
    if unknown:
        message = f"unknown event types: {', '.join(unknown)}"
        raise ApplicationError(f"events: {message}.", fields={"events": [message]})
    return [] if "*" in events else list(dict.fromkeys(events))


def webhook_endpoint_create(*, url: str, events: list[str] | None = None, description: str = "",
                            actor=None) -> WebhookEndpoint:
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(url=clean_url(url), events=clean_events(events),
                                                  description=description or "", secret=signing.secret_generate())
        audit_record(action="webhook_endpoint.created", obj=endpoint, actor=actor_label(actor),
                     actor_user=actor_user(actor), inputs={"url": endpoint.url, "events": endpoint.events})
    return endpoint


def webhook_endpoint_update(*, endpoint: WebhookEndpoint, actor=None, **changes) -> WebhookEndpoint:
    """PATCH: url, events, description, enabled. Enabling again clears the failure streak."""
    with transaction.atomic():
        endpoint = row_lock(WebhookEndpoint, endpoint.pk)
        updated = []
        if "url" in changes:
            endpoint.url = clean_url(changes["url"])
            updated.append("url")
        if "events" in changes:
            endpoint.events = clean_events(changes["events"])
            updated.append("events")
        if "description" in changes:
            endpoint.description = changes["description"] or ""
            updated.append("description")
        if "enabled" in changes and bool(changes["enabled"]) != endpoint.enabled:
            endpoint.enabled = bool(changes["enabled"])
            if endpoint.enabled:
                endpoint.failing_since, endpoint.disabled_at, endpoint.disabled_reason = None, None, ""
            else:
                endpoint.disabled_at, endpoint.disabled_reason = timezone.now(), "disabled by a user"
            endpoint.disabled_by_failures = False
            updated += ["enabled", "failing_since", "disabled_at", "disabled_reason", "disabled_by_failures"]
        if updated:
            endpoint.save(update_fields=[*updated, "updated_at"])
            audit_record(action="webhook_endpoint.updated", obj=endpoint, actor=actor_label(actor),
                         actor_user=actor_user(actor), inputs={name: getattr(endpoint, name) for name in updated})
    return endpoint


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint, actor=None) -> None:
    with transaction.atomic():
        audit_record(action="webhook_endpoint.deleted", obj=endpoint, actor=actor_label(actor),
                     actor_user=actor_user(actor), inputs={"url": endpoint.url})
        endpoint.delete()


def _finance_admin_emails() -> list[str]:
    users = get_user_model().objects.filter(Q(is_superuser=True) | Q(groups__name=FINANCE_ADMIN), is_active=True)
    return sorted({email for email in users.values_list("email", flat=True) if email})


def webhook_endpoint_disable_failing(*, endpoint: WebhookEndpoint, as_of: datetime) -> WebhookEndpoint:
    """The sweeper's rule: failing for WEBHOOKS_DISABLE_AFTER_DAYS days → disabled, finance told."""
    with transaction.atomic():
        endpoint = row_lock(WebhookEndpoint, endpoint.pk)
        if not endpoint.enabled:
            return endpoint
        since = endpoint.failing_since
        endpoint.enabled = False
        endpoint.disabled_at = timezone.now()
        endpoint.disabled_reason = f"failing since {since:%Y-%m-%d %H:%M} UTC"
        endpoint.disabled_by_failures = True
        endpoint.save(update_fields=["enabled", "disabled_at", "disabled_reason", "disabled_by_failures", "updated_at"])
        audit_record(action="webhook_endpoint.disabled", obj=endpoint, actor="system",
                     rule=f"webhook deliveries failing for {settings.WEBHOOKS_DISABLE_AFTER_DAYS} days",
                     inputs={"failing_since": since, "as_of": as_of})
        recipients = _finance_admin_emails()
        if recipients:
            subject = f"Webhook endpoint disabled: {endpoint.url}"
            body = (f"Every delivery to {endpoint.url} ({endpoint.description or 'no description'}) has failed since "
                    f"{since:%Y-%m-%d %H:%M} UTC, so the endpoint was disabled. Events keep queuing for it; fix the "
                    f"receiver and enable the endpoint again (admin or PATCH /api/v1/webhook_endpoints/{endpoint.pk}/) "
                    f"to have them delivered.")
            transaction.on_commit(lambda: send_mail(subject, body, None, recipients, fail_silently=True), robust=True)
    return endpoint


def webhook_delivery_retry(*, delivery: WebhookDelivery, actor=None) -> WebhookDelivery:
    """A manual retry: one attempt now, logged as manual. It does not consume the automatic schedule; a
    success ends it."""
    from webhooks.delivery import attempt  # noqa: PLC0415 — cycle: webhooks.delivery imports this module

    if not delivery.endpoint.enabled:
        raise ConflictError("The endpoint is disabled; enable it before retrying its deliveries.",
                            code="endpoint_disabled")
    attempt(delivery=delivery, as_of=timezone.now(), manual=True)
    delivery.refresh_from_db()
    audit_record(action="webhook_delivery.retried", obj=delivery, actor=actor_label(actor),
                 actor_user=actor_user(actor), inputs={"status": delivery.status,
                                                       "status_code": delivery.last_status_code})
    return delivery

