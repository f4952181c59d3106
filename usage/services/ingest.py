"""Usage ingestion, the public services: one event (`POST /events/`) or a batch of up to MAX_BATCH
(`POST /events/batch/`). Both run the set-based pipeline (usage/services/pipeline.py); every
rejection and conflict becomes a dead letter (one bulk insert per batch)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

from usage.models import DeadLetterEvent
from usage.services.dead_letters import dead_letter_build
from usage.services.pipeline import events_ingest
from usage.services.validation import IngestError, ParsedEvent, Status

MAX_BATCH = 1000


@dataclass(frozen=True)
class IngestResult:
    status: str  # accepted | duplicate | conflict | rejected
    transaction_id: str | None = None
    error: IngestError | None = None
    dead_letter_id: int | None = None


@dataclass(frozen=True)
class BatchResult:
    accepted: int
    duplicates: int
    rejected: list[dict]  # [{"index", "transaction_id", "error": {...}}]
    results: list[IngestResult]

    def as_dict(self) -> dict:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}


def _result(item: ParsedEvent, dead_letter: DeadLetterEvent | None = None) -> IngestResult:
    return IngestResult(status=item.status, transaction_id=item.transaction_id, error=item.error,
                        dead_letter_id=dead_letter.pk if dead_letter else None)


def event_ingest(*, payload: Any, raw_body: str | None = None, now: datetime | None = None) -> IngestResult:
    """Ingest one event (the parsed JSON body). Rejections and conflicts are stored as dead letters."""
    (item,) = events_ingest([payload], now=now)
    dead_letter = None
    if item.error:
        dead_letter = dead_letter_build(item, source="single", raw_body=raw_body)
        dead_letter.save(force_insert=True)
    return _result(item, dead_letter)


def event_ingest_batch(*, events: Sequence[Any], now: datetime | None = None) -> BatchResult:
    """Ingest up to MAX_BATCH events set-based; one bad event never rejects the others."""
    if len(events) > MAX_BATCH:
        raise ValueError(f"at most {MAX_BATCH} events per batch")
    items = events_ingest(list(events), now=now)
    failed = [i for i in items if i.error]
    letters = DeadLetterEvent.objects.bulk_create([dead_letter_build(i, source="batch", raw_body=None) for i in failed])
    letter_by_index = {i.index: dl for i, dl in zip(failed, letters)}
    results = [_result(i, letter_by_index.get(i.index)) for i in items]
    return BatchResult(
        accepted=sum(1 for i in items if i.status == Status.ACCEPTED),
        duplicates=sum(1 for i in items if i.status == Status.DUPLICATE),
        rejected=[{"index": i.index, "transaction_id": i.transaction_id, "error": i.error.as_dict()} for i in failed],
        results=results,
    )
