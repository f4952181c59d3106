from rest_framework import serializers

from webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.outbox import EVENT_TYPES

ENDPOINT_FIELDS = ("id", "url", "events", "description", "enabled", "failing_since", "disabled_at",
                   "disabled_reason", "created_at", "updated_at")


class WebhookEndpointSerializer(serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.CharField(), help_text="Event types sent here; empty means all")

    class Meta:
        model = WebhookEndpoint
        fields = ENDPOINT_FIELDS
        read_only_fields = fields


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    """The creation answer: the only time the signing secret is shown."""

    class Meta(WebhookEndpointSerializer.Meta):
        fields = (*ENDPOINT_FIELDS, "secret")
        read_only_fields = fields


class WebhookEndpointCreateSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=2000)
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_TYPES + ("*",)), required=False,
                                   allow_empty=True, max_length=len(EVENT_TYPES) + 1,
                                   help_text="Default: every event type")
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class WebhookEndpointUpdateSerializer(WebhookEndpointCreateSerializer):
    url = serializers.URLField(max_length=2000, required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)


class WebhookAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ("attempted_at", "manual", "status_code", "latency_ms", "response_excerpt", "error")
        read_only_fields = fields


class WebhookDeliverySerializer(serializers.ModelSerializer):
    endpoint = serializers.UUIDField(source="endpoint_id", read_only=True)
    event_id = serializers.CharField(source="event.webhook_id", read_only=True, help_text="The webhook-id header")
    event_type = serializers.CharField(source="event.type", read_only=True)
    status = serializers.ChoiceField(choices=DeliveryStatus.choices, read_only=True)
    attempts = WebhookAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = ("id", "endpoint", "event_id", "event_type", "status", "attempt_count", "next_attempt_at",
                  "last_attempt_at", "last_status_code", "delivered_at", "created_at", "attempts")
        read_only_fields = fields
