from __future__ import annotations

import uuid

from django.db.models import QuerySet

from common.errors import NotFoundError
from webhooks.models import WebhookDelivery, WebhookEndpoint


def _uuid_or_404(value, label: str):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFoundError(f"{label} '{value}' not found.") from None


def webhook_endpoints_list() -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.order_by("created_at", "pk")


def webhook_endpoint_get(*, endpoint_id) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(pk=_uuid_or_404(endpoint_id, "Webhook endpoint")).first()
    if endpoint is None:
        raise NotFoundError(f"Webhook endpoint '{endpoint_id}' not found.")
    return endpoint


def webhook_deliveries_list(*, endpoint: WebhookEndpoint, status: str | None = None) -> QuerySet[WebhookDelivery]:
    qs = (WebhookDelivery.objects.filter(endpoint=endpoint).select_related("event")
          .prefetch_related("attempts").order_by("-created_at", "pk"))
    if status:
        qs = qs.filter(status__in=status.split(","))
    return qs


def webhook_delivery_get(*, delivery_id) -> WebhookDelivery:
    delivery = (WebhookDelivery.objects.select_related("event", "endpoint").prefetch_related("attempts")
                .filter(pk=_uuid_or_404(delivery_id, "Webhook delivery")).first())
    if delivery is None:
        raise NotFoundError(f"Webhook delivery '{delivery_id}' not found.")
    return delivery
