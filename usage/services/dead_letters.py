"""Dead letters: every rejected event is kept with its reason (nothing posted is lost silently),
and finance can replay it once the cause is fixed (DESIGN.md §4)."""

from __future__ import annotations

import json
from decimal import Decimal

from django.db import transaction
from django.utils import timezone as dj_timezone

from common.audit import actor_label, audit_record
from usage.models import DeadLetterEvent, RejectReason, ReplayStatus
from usage.services.payload import dumps_exact
from usage.services.pipeline import events_ingest
from usage.services.validation import MAX_ID_LENGTH, ParsedEvent, Status, reject


def dead_letter_build(item: ParsedEvent, *, source: str, raw_body: str | None) -> DeadLetterEvent:
    """The (unsaved) dead letter of a rejected or conflicting event."""
    raw = item.raw if isinstance(item.raw, dict) else {}
    text = lambda key: raw.get(key) if isinstance(raw.get(key), str) else ""  # noqa: E731
    return DeadLetterEvent(
        source=source,
        batch_index=item.index if source == "batch" else None,
        raw_body=raw_body if raw_body is not None else dumps_exact(item.raw),
        transaction_id=(item.transaction_id or text("transaction_id"))[:MAX_ID_LENGTH],
        customer_external_id=text("customer")[:255],
        subscription_external_id=text("subscription")[:255],
        metric_code=text("code")[:120],
        reason=item.error.code,
        message=item.error.message,
        fields=item.error.fields,
    )


def dead_letter_record(*, raw_body: str, reason: str, message: str, source: str = "single",
                       fields: dict | None = None) -> DeadLetterEvent:
    """Store a body that never became an event (unparseable JSON, oversized batch, …)."""
    return DeadLetterEvent.objects.create(raw_body=raw_body, reason=reason, message=message, source=source,
                                          fields=fields or {})


def dead_letter_replay(*, dead_letter: DeadLetterEvent, actor=None) -> DeadLetterEvent:
    """Ingest a dead letter's body again (after finance fixed the cause). The outcome is recorded on
    the dead letter itself; a replay that fails again does not create another dead letter."""
    with transaction.atomic():
        letter = DeadLetterEvent.objects.select_for_update().get(pk=dead_letter.pk)
        if letter.is_resolved:
            return letter
        try:
            payload = json.loads(letter.raw_body, parse_float=Decimal)
        except ValueError:
            payload = None
        if payload is None or letter.reason == RejectReason.BATCH_TOO_LARGE:
            status = ReplayStatus.REJECTED
            error = reject(RejectReason.MALFORMED_BODY, "The stored body is not one JSON event.")
        else:
            (item,) = events_ingest([payload])
            status = {Status.ACCEPTED: ReplayStatus.ACCEPTED, Status.DUPLICATE: ReplayStatus.DUPLICATE}.get(
                item.status, ReplayStatus.REJECTED)
            error = item.error
        letter.replayed_at = dj_timezone.now()
        letter.replay_count += 1
        letter.replay_status = status
        letter.replay_reason = error.code if error else ""
        letter.replay_message = error.message if error else ""
        letter.replayed_by = actor_label(actor)
        letter.save(update_fields=["replayed_at", "replay_count", "replay_status", "replay_reason", "replay_message",
                                   "replayed_by"])
        audit_record(action="usage.dead_letter_replayed", obj=letter, actor=actor_label(actor), rule="dead_letter_replay",
                     inputs={"reason": letter.reason, "transaction_id": letter.transaction_id, "result": status,
                             "result_reason": letter.replay_reason})
    return letter
