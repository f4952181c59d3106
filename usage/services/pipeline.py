"""The set-based ingestion pipeline shared by single events, batches and dead-letter replays.

1. one lookup query (metrics, customers, candidate subscriptions, existing idempotency keys);
2. validation in Python (no queries, usage/services/validation.py);
3. one INSERT statement for all valid rows: it share-locks their subscriptions (so a billing run
   that holds the subscription row FOR UPDATE either sees the event or makes it late), inserts the
   idempotency keys with ON CONFLICT DO NOTHING and the events for the keys it won, and folds those
   events into the daily rollups (usage_rollup_daily / usage_rollup_unique, see usage/rollups.py);
4. only when some keys already existed (a concurrent writer won): one query for their hashes.

The two hot statements are plpgsql functions (migration usage 0004) called as server-side prepared
statements: planned once per connection, with sequential scans disabled, so their cost never grows
with the events or keys stored, whatever the statistics say.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from functools import lru_cache
from typing import Any, Sequence

from django.db import connection, transaction
from django.db.backends.postgresql.base import ServerBindingCursor
from django.utils import timezone as dj_timezone

from usage.partitioning import forget_known_partitions, is_missing_partition_error, usage_partitions_ensure_for
from usage.services.payload import dumps_exact
from usage.services.validation import (LIVE, Lookup, MetricInfo, ParsedEvent, Status, SubscriptionInfo, conflict_error,
                                       event_parse, event_validate)


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


# usage_ingest_lookup: joins against the batch's ids (migration usage 0005). Every parameter is a
# JSON array, dumped by json.dumps in C (psycopg builds array literals element by element in Python).
_LOOKUP_SQL = ("SELECT * FROM usage_ingest_lookup(%(codes)s::jsonb, %(customers)s::jsonb, %(subs)s::jsonb, "
               "%(resolve)s::jsonb, %(tids)s::jsonb)")


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


def _lookup(items: list[ParsedEvent]) -> Lookup:
    params = {
        "codes": json.dumps(sorted({i.code for i in items})),
        "customers": json.dumps(sorted({i.customer for i in items if i.customer})),
        "subs": json.dumps(sorted({i.subscription for i in items if i.subscription})),
        "resolve": json.dumps(sorted({i.customer for i in items if i.customer and not i.subscription})),
        "tids": json.dumps(sorted({i.transaction_id for i in items})),
    }
    with _hot_cursor() as cursor:
        cursor.execute(_LOOKUP_SQL, params)
        metrics_raw, customers_raw, subs_raw, keys_raw = cursor.fetchone()
    metrics = {code: MetricInfo(mid, agg, fld, negative) for mid, code, agg, fld, negative in _json(metrics_raw)}
    customer_map = {ext: (cid, tz) for cid, ext, tz in _json(customers_raw)}
    sub_by_ext: dict[str, SubscriptionInfo] = {}
    live_by_customer: dict[str, list[SubscriptionInfo]] = {}
    for sid, ext, cid, status, start, end, cext, tz, metric_ids in _json(subs_raw):
        sub = SubscriptionInfo(sid, ext, cid, status, date.fromisoformat(start), date.fromisoformat(end) if end else None,
                               cext, tz, frozenset(metric_ids or ()))
        sub_by_ext[ext] = sub
        # Every subscription of the customer that was live at some time: an event belongs to the one
        # live at its timestamp, even if since canceled or ended (DESIGN.md §4; `serves`). A
        # canceled/ended one without an end date says nothing about when it served.
        if status in LIVE or sub.end_date is not None:
            live_by_customer.setdefault(cext, []).append(sub)
    keys = {tid: bytes.fromhex(h) for tid, h in _json(keys_raw)}
    return Lookup(metrics, customer_map, sub_by_ext, live_by_customer, keys)


# usage_ingest_insert (migration usage 0005): share-locks the subscriptions, inserts the idempotency
# keys (ON CONFLICT DO NOTHING), the events for the keys it won (is_late from the locked row), and
# folds those events into the daily rollups (usage_rollup_daily upserted in key order,
# usage_rollup_unique for unique_count values). Returns the transaction ids it stored. The rows go
# as one JSON document (see _LOOKUP_SQL): exact decimal text, ISO instants, properties as JSON text.
_INSERT_SQL = "SELECT * FROM usage_ingest_insert(%s::jsonb)"


@lru_cache(maxsize=8192)
def _iso(value: date | datetime) -> str:
    """isoformat of the few days and day bounds a batch shares (any equal instant is the same value)."""
    return value.isoformat()


def _row(r: ParsedEvent) -> list:
    return [r.transaction_id, r.hash.hex(), r.customer_id, r.subscription_id, r.metric_id, r.timestamp.isoformat(),
            _iso(r.local_date), dumps_exact(r.properties), None if r.value is None else str(r.value),
            r.unique_value, _iso(r.bucket_start), _iso(r.bucket_end)]


def _insert(rows: list[ParsedEvent]) -> set[str]:
    params = [json.dumps([_row(r) for r in rows])]
    usage_partitions_ensure_for(timestamps=[r.timestamp for r in rows])
    for attempt in (1, 2):
        try:
            with _hot_cursor() as cursor:
                if connection.in_atomic_block:
                    with transaction.atomic():  # a savepoint, so a missing partition can be retried
                        cursor.execute(_INSERT_SQL, params)
                        return {row[0] for row in cursor.fetchall()}
                cursor.execute(_INSERT_SQL, params)
                return {row[0] for row in cursor.fetchall()}
        except Exception as exc:  # noqa: BLE001 - only the missing-partition case is retried
            if attempt == 2 or not is_missing_partition_error(exc):
                raise
            forget_known_partitions()
            usage_partitions_ensure_for(timestamps=[r.timestamp for r in rows])
    raise AssertionError("unreachable")


def _existing_hashes(tids: list[str]) -> dict[str, bytes]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT transaction_id, payload_hash FROM usage_event_key WHERE transaction_id = ANY(%s::text[])",
                       [tids])
        return {tid: bytes(h) for tid, h in cursor.fetchall()}


def events_ingest(raw_events: Sequence[Any], now: datetime | None = None) -> list[ParsedEvent]:
    """Parse, validate, insert. Sets `status` (and `error`) on every item; stores nothing else
    (dead letters are the caller's)."""
    now = now or dj_timezone.now()
    items = [event_parse(index, raw) for index, raw in enumerate(raw_events)]
    for item in items:
        if item.error:
            item.status = Status.REJECTED
    candidates = [i for i in items if i.status is None]
    if not candidates:
        return items
    found = _lookup(candidates)
    to_insert: dict[str, ParsedEvent] = {}
    for item in candidates:
        tid = item.transaction_id
        known = found.keys.get(tid)
        if known is None and tid in to_insert:
            known = to_insert[tid].hash  # the same id twice in one batch: the first one wins
        if known is not None:
            if known == item.hash:
                item.status = Status.DUPLICATE
            else:
                item.status, item.error = Status.CONFLICT, conflict_error(tid)
            continue
        item.error = event_validate(item, now, found)
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
            row.status, row.error = Status.CONFLICT, conflict_error(row.transaction_id)
    # later copies inside the batch follow their first occurrence
    for item in candidates:
        first = to_insert.get(item.transaction_id)
        if first is not None and first is not item and item.status == Status.DUPLICATE and first.status == Status.CONFLICT:
            item.status, item.error = Status.CONFLICT, conflict_error(item.transaction_id)
    return items
