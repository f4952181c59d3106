"""Usage ingestion: validate, dedupe, store; dead letters and their replay; late-event billing marks.

The hot path is set-based for single events and batches alike:
1. one lookup query (metrics, customers, candidate subscriptions, existing idempotency keys);
2. validation in Python (no queries);
3. one INSERT statement for all valid rows: it share-locks their subscriptions (so a billing run
   that holds the subscription row FOR UPDATE either sees the event or makes it late), inserts the
   idempotency keys with ON CONFLICT DO NOTHING and the events for the keys it won, and folds those
   events into the daily rollups (usage_rollup_daily / usage_rollup_unique, see usage/rollups.py);
4. only when some keys already existed (a concurrent writer won): one query for their hashes.
Rejected events go to DeadLetterEvent in one bulk insert.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Context, Decimal
from functools import lru_cache
from typing import Any, Sequence

from django.db import connection, transaction
from django.db.backends.postgresql.base import ServerBindingCursor
from django.utils import timezone as dj_timezone

from catalog.models import Aggregation
from common.audit import actor_label, audit_record
from common.money import parse_decimal
from common.timeutil import DATE_MAX, DATE_MIN, date_in_bounds, local_date, local_date_bounds_utc
from subscriptions.models import LIVE_STATUSES
from usage.models import VALUE_DECIMAL_PLACES, DeadLetterEvent, RejectReason, ReplayStatus
from usage.partitioning import forget_known_partitions, is_missing_partition_error, usage_partitions_ensure_for

MAX_BATCH = 1000
FUTURE_TOLERANCE = timedelta(minutes=5)
MAX_ID_LENGTH = 255
_NUMERIC = {Aggregation.SUM.value, Aggregation.MAX.value, Aggregation.LATEST.value}
_LIVE = tuple(str(s) for s in LIVE_STATUSES)
# An event value has at most 15 integer digits: the event column holds 26, but one event's value
# priced at 1.00 must still fit an invoice amount (MONEY_FIELD: 20 digits, 4 places → 16 integer
# digits), so a single poison event cannot overflow the rating of a whole billing run.
_MAX_INT_DIGITS = 15
# Strings must be plain decimals: Python's Decimal() also reads "1_000", "١٢٣" (Arabic-Indic
# digits), " 5 " and "1e3", which no client means as a usage quantity.
_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?", re.ASCII)
_WIDE = Context(prec=100)  # normalize without rounding


class Status:
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    REJECTED = "rejected"


@dataclass(frozen=True)
class IngestError:
    code: str
    message: str
    fields: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "fields": self.fields}


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


class _PreparedCursor(ServerBindingCursor):
    """Server-side binding, prepared on first use: the hot-path statements are planned once per
    connection instead of on every request (Django leaves prepared statements off by default)."""

    def execute(self, query, params=None, **kwargs):
        kwargs.setdefault("prepare", True)
        return super().execute(query, params, **kwargs)


def _hot_cursor():
    """A Django-wrapped cursor (errors, query logging, atomic checks) over a prepared-statement cursor."""
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        # Django disables preparation (for poolers); a huge threshold keeps automatic preparation off
        # while letting these explicit prepare=True statements be prepared.
        raw.prepare_threshold = 2**31 - 1
    # The statements themselves are plpgsql functions that set plan_cache_mode and enable_seqscan
    # for their own plans (migration usage 0004); the session's settings are left alone.
    return connection._prepare_cursor(_PreparedCursor(raw))


# --------------------------------------------------------------------------------------------
# JSON helpers (exact: Decimals are written as JSON numbers with their exact digits)


def dumps_exact(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else json.dumps(str(value))
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dumps_exact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps_exact(v) for v in value) + "]"
    return json.dumps(value)


def _canonical(value: Any) -> Any:
    """Stable form for hashing: numbers as strings (a JSON number and the same numeric string are
    the same payload, API.md reads both as the same Decimal: 5 ≡ "5", 5.5 ≡ "5.5")."""
    if isinstance(value, Decimal) or (isinstance(value, int) and not isinstance(value, bool)):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def payload_hash(event: dict, timestamp: datetime | None) -> bytes:
    """SHA-256 over the fields that define an event. The timestamp is compared as an instant
    (the same moment written with another offset is the same payload)."""
    body = {
        "transaction_id": event.get("transaction_id"),
        "customer": event.get("customer"),
        "subscription": event.get("subscription"),
        "code": event.get("code"),
        "timestamp": timestamp.astimezone(timezone.utc).isoformat() if timestamp else event.get("timestamp"),
        "properties": event.get("properties") or {},
    }
    text = json.dumps(_canonical(body), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).digest()


# --------------------------------------------------------------------------------------------
# Parsing and validation


@dataclass
class _Parsed:
    index: int
    raw: Any
    transaction_id: str | None = None
    customer: str | None = None
    subscription: str | None = None
    code: str | None = None
    timestamp: datetime | None = None
    properties: dict | None = None
    hash: bytes = b""
    error: IngestError | None = None
    status: str | None = None
    # resolved
    customer_id: int | None = None
    subscription_id: int | None = None
    metric_id: int | None = None
    local_date: date | None = None
    value: Decimal | None = None
    unique_value: str | None = None
    bucket_start: datetime | None = None  # the customer-local day, as UTC instants (daily rollups)
    bucket_end: datetime | None = None


@lru_cache(maxsize=65536)
def _day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    return local_date_bounds_utc(day, day + timedelta(days=1), tz)


def _err(reason: str, message: str, **fields: str) -> IngestError:
    return IngestError(str(reason), message, {k: [v] for k, v in fields.items()})


def _parse_timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) < 20 or "T" not in value.upper():
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None or not date_in_bounds(parsed.date()):
        return None  # year 1 with an offset would not even convert to UTC
    return parsed.astimezone(timezone.utc)


def _optional_id(event: dict, key: str) -> tuple[str | None, IngestError | None]:
    value = event.get(key)
    if value is None:
        return None, None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_LENGTH:
        return None, _err(RejectReason.INVALID, f"'{key}' must be a non-empty string of at most {MAX_ID_LENGTH} characters.",
                          **{key: "invalid"})
    return value, None


def _parse(index: int, raw: Any) -> _Parsed:
    item = _Parsed(index=index, raw=raw)
    if not isinstance(raw, dict):
        item.error = _err(RejectReason.MALFORMED_BODY, "An event must be a JSON object.")
        return item
    tid = raw.get("transaction_id")
    if not isinstance(tid, str) or not tid.strip() or len(tid) > MAX_ID_LENGTH:
        item.error = _err(RejectReason.INVALID, "'transaction_id' is required: a non-empty string of at most 255 characters.",
                          transaction_id="required")
        return item
    item.transaction_id = tid
    item.timestamp = _parse_timestamp(raw.get("timestamp"))
    item.hash = payload_hash(raw, item.timestamp)
    errors: dict[str, list[str]] = {}
    item.customer, e1 = _optional_id(raw, "customer")
    item.subscription, e2 = _optional_id(raw, "subscription")
    for e in (e1, e2):
        if e:
            errors.update(e.fields)
    if item.customer is None and item.subscription is None and not errors:
        errors["customer"] = ["'customer' or 'subscription' is required"]
    code = raw.get("code")
    if not isinstance(code, str) or not code.strip():
        errors["code"] = ["required: the billable metric code"]
    else:
        item.code = code
    if item.timestamp is None:
        errors["timestamp"] = [f"required: an RFC 3339 timestamp with offset, from {DATE_MIN} to {DATE_MAX}"]
    properties = raw.get("properties")
    if properties is None:
        item.properties = {}
    elif isinstance(properties, dict):
        item.properties = properties
    else:
        errors["properties"] = ["must be an object"]
    if errors:
        name, messages = next(iter(errors.items()))
        item.error = IngestError(RejectReason.INVALID, f"{name}: {messages[0]}", errors)
    return item


def _extract_value(item: _Parsed, aggregation: str, field_name: str, allow_negative: bool) -> IngestError | None:
    if aggregation == Aggregation.COUNT:
        return None
    props = item.properties or {}
    key = f"properties.{field_name}"
    raw = props.get(field_name)
    if raw is None:
        return _err(RejectReason.MISSING_PROPERTY, f"Property '{field_name}' is required by metric '{item.code}'.",
                    **{key: "required"})
    if aggregation == Aggregation.UNIQUE_COUNT:
        item.unique_value = raw if isinstance(raw, str) else dumps_exact(raw)
        return None
    value = parse_decimal(raw) if not isinstance(raw, str) or _PLAIN_DECIMAL.fullmatch(raw) else None
    if value is None:
        return _err(RejectReason.NON_NUMERIC_PROPERTY,
                    f"Property '{field_name}' must be a number or a plain decimal string (ASCII digits, "
                    f"optional '-' and '.'), got {dumps_exact(raw)[:60]}.",
                    **{key: "not a number"})
    value = value.normalize(context=_WIDE) if value else Decimal(0)
    exponent = value.as_tuple().exponent
    if (isinstance(exponent, int) and exponent < -VALUE_DECIMAL_PLACES) or value.adjusted() >= _MAX_INT_DIGITS:
        return _err(RejectReason.NON_NUMERIC_PROPERTY,
                    f"Property '{field_name}' must have at most {VALUE_DECIMAL_PLACES} decimal places and "
                    f"{_MAX_INT_DIGITS} integer digits.", **{key: "out of range"})
    if value < 0 and not allow_negative:
        return _err(RejectReason.NON_NUMERIC_PROPERTY,
                    f"Property '{field_name}' must not be negative: metric '{item.code}' does not allow negative "
                    "values (allow_negative).", **{key: "negative"})
    item.value = value
    return None


# The lookup is the plpgsql function usage_ingest_lookup (migration usage 0004): joins against
# unnest() of the batch's ids, planned once per session with sequential scans disabled, so its cost
# never grows with the events or keys stored, whatever the statistics say.
_LOOKUP_SQL = "SELECT * FROM usage_ingest_lookup(%(codes)s::text[], %(customers)s::text[], %(subs)s::text[], %(resolve)s::text[], %(tids)s::text[])"


@dataclass
class _Sub:
    id: int
    external_id: str
    customer_id: int
    status: str
    start_date: date
    end_date: date | None
    customer_external_id: str
    timezone: str
    metric_ids: frozenset

    def serves(self, day: date) -> bool:
        return self.start_date <= day and (self.end_date is None or day < self.end_date)


def _lookup(items: list[_Parsed]) -> tuple[dict, dict, dict, dict, dict]:
    codes = sorted({i.code for i in items})
    customers = sorted({i.customer for i in items if i.customer})
    subs = sorted({i.subscription for i in items if i.subscription})
    resolve = sorted({i.customer for i in items if i.customer and not i.subscription})
    tids = sorted({i.transaction_id for i in items})
    with _hot_cursor() as cursor:
        cursor.execute(_LOOKUP_SQL, {"codes": codes, "customers": customers, "subs": subs, "resolve": resolve, "tids": tids})
        metrics_raw, customers_raw, subs_raw, keys_raw = cursor.fetchone()
    load = (lambda v: json.loads(v) if isinstance(v, str) else v)
    metrics = {code: (mid, agg, fld, negative) for mid, code, agg, fld, negative in load(metrics_raw)}
    customer_map = {ext: (cid, tz) for cid, ext, tz in load(customers_raw)}
    sub_by_ext: dict[str, _Sub] = {}
    live_by_customer: dict[str, list[_Sub]] = {}
    for sid, ext, cid, status, start, end, cext, tz, metric_ids in load(subs_raw):
        sub = _Sub(sid, ext, cid, status, date.fromisoformat(start), date.fromisoformat(end) if end else None, cext, tz,
                   frozenset(metric_ids or ()))
        sub_by_ext[ext] = sub
        # Every subscription of the customer that was live at some time: an event belongs to the one
        # live at its timestamp, even if since canceled or ended (DESIGN.md §4; `serves`). A
        # canceled/ended one without an end date says nothing about when it served.
        if status in _LIVE or sub.end_date is not None:
            live_by_customer.setdefault(cext, []).append(sub)
    keys = {tid: bytes.fromhex(h) for tid, h in load(keys_raw)}
    return metrics, customer_map, sub_by_ext, live_by_customer, keys


def _validate(item: _Parsed, now: datetime, metrics, customers, sub_by_ext, live_by_customer) -> IngestError | None:
    if item.timestamp > now + FUTURE_TOLERANCE:
        return _err(RejectReason.FUTURE_TIMESTAMP, "The timestamp is more than 5 minutes in the future.",
                    timestamp="in the future")
    metric = metrics.get(item.code)
    if metric is None:
        return _err(RejectReason.UNKNOWN_METRIC, f"Unknown billable metric '{item.code}'.", code="unknown")
    item.metric_id, aggregation, field_name, allow_negative = metric
    error = _extract_value(item, aggregation, field_name, allow_negative)
    if error:
        return error
    if item.subscription:
        sub = sub_by_ext.get(item.subscription)
        if sub is None:
            return _err(RejectReason.UNKNOWN_SUBSCRIPTION, f"Unknown subscription '{item.subscription}'.", subscription="unknown")
        if item.customer and item.customer != sub.customer_external_id:
            if item.customer not in customers:
                return _err(RejectReason.UNKNOWN_CUSTOMER, f"Unknown customer '{item.customer}'.", customer="unknown")
            return _err(RejectReason.SUBSCRIPTION_MISMATCH,
                        f"Subscription '{sub.external_id}' does not belong to customer '{item.customer}'.",
                        subscription="belongs to another customer")
        item.local_date = local_date(item.timestamp, sub.timezone)
        if not sub.serves(item.local_date):
            return _err(RejectReason.OUTSIDE_SUBSCRIPTION,
                        f"The event's date {item.local_date} ({sub.timezone}) is outside subscription '{sub.external_id}' "
                        f"({sub.start_date} to {sub.end_date or 'open'}).", timestamp="outside the subscription")
        item.subscription_id, item.customer_id = sub.id, sub.customer_id
        item.bucket_start, item.bucket_end = _day_bounds(item.local_date, sub.timezone)
        return None
    customer = customers.get(item.customer)
    if customer is None:
        return _err(RejectReason.UNKNOWN_CUSTOMER, f"Unknown customer '{item.customer}'.", customer="unknown")
    item.customer_id, tz = customer
    item.local_date = local_date(item.timestamp, tz)
    candidates = [s for s in live_by_customer.get(item.customer, ()) if item.metric_id in s.metric_ids and s.serves(item.local_date)]
    if not candidates:
        return _err(RejectReason.NO_SUBSCRIPTION,
                    f"Customer '{item.customer}' has no live subscription on {item.local_date} whose plan charges "
                    f"'{item.code}'; send 'subscription' or create one, then replay.", subscription="no match")
    if len(candidates) > 1:
        names = ", ".join(sorted(s.external_id for s in candidates))
        return _err(RejectReason.AMBIGUOUS_SUBSCRIPTION,
                    f"Customer '{item.customer}' has several subscriptions charging '{item.code}' ({names}); "
                    "send 'subscription'.", subscription="ambiguous")
    item.subscription_id = candidates[0].id
    item.bucket_start, item.bucket_end = _day_bounds(item.local_date, tz)
    return None


# --------------------------------------------------------------------------------------------
# The insert


# The insert is the plpgsql function usage_ingest_insert (migration usage 0004), one statement:
# share-locks the subscriptions, inserts the idempotency keys (ON CONFLICT DO NOTHING), the events
# for the keys it won (is_late from the locked row), and folds those events into the daily rollups
# (usage_rollup_daily upserted in key order, usage_rollup_unique for unique_count values). Planned
# once per session with sequential scans disabled.
_INSERT_SQL = ("SELECT * FROM usage_ingest_insert(%s::text[], %s::bytea[], %s::bigint[], %s::bigint[], %s::bigint[], "
               "%s::timestamptz[], %s::date[], %s::text[], %s::numeric[], %s::text[], %s::timestamptz[], "
               "%s::timestamptz[])")


def _insert(rows: list[_Parsed]) -> set[str]:
    sql = _INSERT_SQL
    params = [
        [r.transaction_id for r in rows],
        [r.hash for r in rows],
        [r.customer_id for r in rows],
        [r.subscription_id for r in rows],
        [r.metric_id for r in rows],
        [r.timestamp for r in rows],
        [r.local_date for r in rows],
        [dumps_exact(r.properties) for r in rows],
        [r.value for r in rows],
        [r.unique_value for r in rows],
        [r.bucket_start for r in rows],
        [r.bucket_end for r in rows],
    ]
    usage_partitions_ensure_for(timestamps=[r.timestamp for r in rows])
    for attempt in (1, 2):
        try:
            with _hot_cursor() as cursor:
                if connection.in_atomic_block:
                    with transaction.atomic():  # a savepoint, so a missing partition can be retried
                        cursor.execute(sql, params)
                        return {row[0] for row in cursor.fetchall()}
                cursor.execute(sql, params)
                return {row[0] for row in cursor.fetchall()}
        except Exception as exc:  # noqa: BLE001 - only the missing-partition case is retried
            if attempt == 2 or not is_missing_partition_error(exc):
                raise
            forget_known_partitions()
            usage_partitions_ensure_for(timestamps=[r.timestamp for r in rows])
    raise AssertionError("unreachable")


def _existing_hashes(tids: list[str]) -> dict[str, bytes]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT transaction_id, payload_hash FROM usage_event_key WHERE transaction_id = ANY(%s::text[])", [tids])
        return {tid: bytes(h) for tid, h in cursor.fetchall()}


def _conflict_error(tid: str) -> IngestError:
    return _err(RejectReason.CONFLICT, f"transaction_id '{tid}' was already used for an event with another payload.",
                transaction_id="conflict")


def _ingest(raw_events: Sequence[Any], now: datetime | None = None) -> list[_Parsed]:
    """Parse, validate, insert. Sets `status` (and `error`) on every item; stores nothing else."""
    now = now or dj_timezone.now()
    items = [_parse(index, raw) for index, raw in enumerate(raw_events)]
    for item in items:
        if item.error:
            item.status = Status.REJECTED
    candidates = [i for i in items if i.status is None]
    if not candidates:
        return items
    metrics, customers, sub_by_ext, live_by_customer, keys = _lookup(candidates)
    to_insert: dict[str, _Parsed] = {}
    for item in candidates:
        tid = item.transaction_id
        known = keys.get(tid)
        if known is None and tid in to_insert:
            known = to_insert[tid].hash  # the same id twice in one batch: the first one wins
        if known is not None:
            if known == item.hash:
                item.status = Status.DUPLICATE
            else:
                item.status, item.error = Status.CONFLICT, _conflict_error(tid)
            continue
        item.error = _validate(item, now, metrics, customers, sub_by_ext, live_by_customer)
        if item.error:
            item.status = Status.REJECTED
        else:
            to_insert[tid] = item
    if not to_insert:
        return items
    rows = list(to_insert.values())
    inserted = _insert(rows)
    lost = [r.transaction_id for r in rows if r.transaction_id not in inserted]
    existing = _existing_hashes(lost) if lost else {}
    for row in rows:
        if row.transaction_id in inserted:
            row.status = Status.ACCEPTED
        elif existing.get(row.transaction_id) == row.hash:
            row.status = Status.DUPLICATE  # a concurrent request stored the same event first
        else:
            row.status, row.error = Status.CONFLICT, _conflict_error(row.transaction_id)
    # later copies inside the batch follow their first occurrence
    for item in candidates:
        first = to_insert.get(item.transaction_id)
        if first is not None and first is not item and item.status == Status.DUPLICATE and first.status == Status.CONFLICT:
            item.status, item.error = Status.CONFLICT, _conflict_error(item.transaction_id)
    return items


# --------------------------------------------------------------------------------------------
# Public services


def _dead_letter(item: _Parsed, *, source: str, raw_body: str | None) -> DeadLetterEvent:
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


def _result(item: _Parsed, dead_letter: DeadLetterEvent | None = None) -> IngestResult:
    return IngestResult(status=item.status, transaction_id=item.transaction_id, error=item.error,
                        dead_letter_id=dead_letter.pk if dead_letter else None)


def event_ingest(*, payload: Any, raw_body: str | None = None, now: datetime | None = None) -> IngestResult:
    """Ingest one event (the parsed JSON body). Rejections and conflicts are stored as dead letters."""
    (item,) = _ingest([payload], now=now)
    dead_letter = None
    if item.error:
        dead_letter = _dead_letter(item, source="single", raw_body=raw_body)
        dead_letter.save(force_insert=True)
    return _result(item, dead_letter)


def event_ingest_batch(*, events: Sequence[Any], now: datetime | None = None) -> BatchResult:
    """Ingest up to MAX_BATCH events set-based; one bad event never rejects the others."""
    if len(events) > MAX_BATCH:
        raise ValueError(f"at most {MAX_BATCH} events per batch")
    items = _ingest(list(events), now=now)
    failed = [i for i in items if i.error]
    letters = DeadLetterEvent.objects.bulk_create([_dead_letter(i, source="batch", raw_body=None) for i in failed])
    letter_by_index = {i.index: dl for i, dl in zip(failed, letters)}
    results = [_result(i, letter_by_index.get(i.index)) for i in items]
    return BatchResult(
        accepted=sum(1 for i in items if i.status == Status.ACCEPTED),
        duplicates=sum(1 for i in items if i.status == Status.DUPLICATE),
        rejected=[{"index": i.index, "transaction_id": i.transaction_id, "error": i.error.as_dict()} for i in failed],
        results=results,
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
            status, error = ReplayStatus.REJECTED, _err(RejectReason.MALFORMED_BODY, "The stored body is not one JSON event.")
        else:
            (item,) = _ingest([payload])
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


def late_events_mark_billed(*, event_ids: Sequence[int], invoice_id, billed_at: datetime | None = None) -> int:
    """Mark late events as billed on `invoice_id`; returns how many rows this call marked.

    Only still-unbilled rows are touched, so a rerun marks nothing twice. Call it in the invoice's
    transaction and compare the count with len(event_ids): a shortfall means another run billed them."""
    if not event_ids:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE usage_event SET late_billed_at = %s, late_billed_invoice_id = %s
            WHERE id = ANY(%s::bigint[]) AND is_late AND late_billed_at IS NULL
            """,
            [billed_at or dj_timezone.now(), invoice_id, list(event_ids)],
        )
        return cursor.rowcount
