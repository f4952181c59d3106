"""Base model mixins and the business audit log (who or which rule did what, with its inputs)."""

import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class TimestampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class AuditEvent(models.Model):
    """An explicit business event: invoice generated, payment attempted, anomaly flagged, …

    Field history (django-simple-history) says what changed; this says why."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    action = models.CharField(max_length=80, db_index=True)
    object_type = models.CharField(max_length=80)
    object_id = models.CharField(max_length=64)
    actor_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor = models.CharField(max_length=120, help_text="user, api key name or the automated rule")
    rule = models.CharField(max_length=200, blank=True)
    inputs = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type}:{self.object_id} by {self.actor}"


class IdempotencyKey(models.Model):
    """The stored first response to a POST sent with an `Idempotency-Key` (API.md; billing_site/idempotency.py).

    Scoped to the API key (`api_key_id`, no foreign key: common sits below customers). Only responses
    below 400 are stored; rows older than IDEMPOTENCY_KEY_TTL_HOURS are purged by a beat job."""

    api_key_id = models.BigIntegerField()
    key = models.CharField(max_length=255)
    request_method = models.CharField(max_length=10)
    request_path = models.CharField(max_length=2000)
    request_hash = models.CharField(max_length=64, help_text="SHA-256 of the request body")
    response_status = models.PositiveSmallIntegerField()
    response_content_type = models.CharField(max_length=200, blank=True)
    response_body = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["api_key_id", "key"], name="idempotency_key_unique_per_api_key")]

    def __str__(self) -> str:
        return f"{self.request_method} {self.request_path} [{self.key}]"
