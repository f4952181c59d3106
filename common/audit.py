from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import models

from common import hooks
from common.models import AuditEvent


def audit_record(*, action: str, obj: models.Model, actor: str = "system", actor_user=None, rule: str = "",
                 inputs: dict | None = None, message: str = "") -> AuditEvent:
    """Write one business audit row and publish it as a domain event (common.hooks). Call inside the
    transaction that made the change."""
    event = AuditEvent.objects.create(
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        actor=actor,
        actor_user=actor_user,
        rule=rule,
        inputs=inputs or {},
        message=message,
    )
    hooks.publish([event])
    return event


def audit_bulk_create(events: list[AuditEvent], *, batch_size: int = 2000) -> list[AuditEvent]:
    """Write many unsaved audit rows in one INSERT per batch and publish them (set-based paths:
    billing runs, finalize batches)."""
    created = AuditEvent.objects.bulk_create(events, batch_size=batch_size)
    hooks.publish(created)
    return created


def actor_label(actor) -> str:
    """A readable actor from a user, an API key, a string or None."""
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor
    name = getattr(actor, "name", None) or getattr(actor, "username", None)
    return f"{actor._meta.model_name}:{name}" if name else str(actor)


def actor_user(actor):
    """The Django user behind `actor`, or None (an API key, a rule name, the system)."""
    return actor if isinstance(actor, get_user_model()) else None
