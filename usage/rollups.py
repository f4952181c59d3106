"""Daily usage rollups (usage/README.md, "Daily rollups"): the rebuild, the statistics refresh.

The rollups are maintained at ingest by `usage_ingest_insert` (migration usage 0004), in the same
statement that stores the events, so they are never behind the events (rollup lag: zero) and a
late event updates its day's row like any other. `usage_rollups_rebuild` recomputes them from the
raw events (after a restore, a bulk load that bypassed ingestion, or a customer's timezone change
when exact per-day rows in the new timezone are wanted); it blocks ingestion while it runs.
"""

from __future__ import annotations

import logging
import time

from django.db import connection, transaction

logger = logging.getLogger(__name__)

# Buckets in the customer's *current* timezone. A local midnight is `day::timestamp AT TIME ZONE tz`.
_REBUILD_SQL = [
    "LOCK TABLE usage_rollup_daily, usage_rollup_unique IN EXCLUSIVE MODE",
    "DELETE FROM usage_rollup_unique {where}",
    "DELETE FROM usage_rollup_daily {where}",
    """
    INSERT INTO usage_rollup_daily (subscription_id, metric_id, bucket_start, is_late, bucket_end, day, customer_id,
                                    event_count, value_sum, value_max, latest_ts, latest_id, latest_value, updated_at)
    SELECT e.subscription_id, e.metric_id, (b.day::timestamp AT TIME ZONE c.timezone), e.is_late,
           ((b.day + 1)::timestamp AT TIME ZONE c.timezone), b.day, min(e.customer_id), count(*), sum(e.value),
           max(e.value), max(e."timestamp"), (array_agg(e.id ORDER BY e."timestamp" DESC, e.id DESC))[1],
           (array_agg(e.value ORDER BY e."timestamp" DESC, e.id DESC))[1], now()
    FROM usage_event e JOIN customers_customer c ON c.id = e.customer_id
    CROSS JOIN LATERAL (SELECT (e."timestamp" AT TIME ZONE c.timezone)::date AS day) b
    WHERE true {and_where}
    GROUP BY e.subscription_id, e.metric_id, c.timezone, b.day, e.is_late
    """,
    """
    INSERT INTO usage_rollup_unique (subscription_id, metric_id, bucket_start, is_late, unique_value, bucket_end)
    SELECT DISTINCT e.subscription_id, e.metric_id, (b.day::timestamp AT TIME ZONE c.timezone), e.is_late,
           e.unique_value, ((b.day + 1)::timestamp AT TIME ZONE c.timezone)
    FROM usage_event e JOIN customers_customer c ON c.id = e.customer_id
    CROSS JOIN LATERAL (SELECT (e."timestamp" AT TIME ZONE c.timezone)::date AS day) b
    WHERE e.unique_value IS NOT NULL {and_where}
    """,
]


def usage_rollups_rebuild(*, subscription_ids=None) -> dict:
    """Recompute the daily rollups from the raw events (all, or those of `subscription_ids`), in one
    transaction that holds ingestion off the rollup tables meanwhile. Returns row counts."""
    where = and_where = ""
    params: list = []
    if subscription_ids is not None:
        where = "WHERE subscription_id = ANY(%s::bigint[])"
        and_where = "AND e.subscription_id = ANY(%s::bigint[])"
        params = [list(subscription_ids)]
    started = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        for sql in _REBUILD_SQL:
            cursor.execute(sql.format(where=where, and_where=and_where), params if "%s" in sql.format(
                where=where, and_where=and_where) else [])
        cursor.execute("SELECT (SELECT count(*) FROM usage_rollup_daily), (SELECT count(*) FROM usage_rollup_unique)")
        daily, unique = cursor.fetchone()
    return {"daily_rows": daily, "unique_rows": unique, "seconds": round(time.monotonic() - started, 2)}


# A table is re-analyzed before a billing run reads it when this share of its rows changed since
# its last ANALYZE (or it was never analyzed): the plan of a run that follows a bulk load must not
# wait for autovacuum (which may lag, or be off).
STALE_FRACTION = 0.2
STALE_MIN_ROWS = 1000


def usage_statistics_refresh(*, include_events: bool = False) -> list[str]:
    """ANALYZE the rollup tables (and with include_events the event partitions) whose statistics
    are stale; returns the tables analyzed. Costs a few catalog reads when nothing is stale."""
    pattern = "usage_rollup_%" if not include_events else "usage_%"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # not the snapshot cached earlier in this transaction
        cursor.execute(
            """
            SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
            WHERE s.relname LIKE %s AND c.relkind = 'r'
              AND (s.relname LIKE 'usage_rollup_%%' OR s.relname LIKE 'usage_event_y%%')
              AND s.n_mod_since_analyze >= %s
              AND (c.reltuples < 0 OR s.n_mod_since_analyze > %s * greatest(c.reltuples, 1))
            ORDER BY s.relname
            """,
            [pattern, STALE_MIN_ROWS, STALE_FRACTION],
        )
        stale = [row[0] for row in cursor.fetchall()]
        for name in stale:
            started = time.monotonic()
            cursor.execute(f'ANALYZE "{name}"')
            logger.info("analyzed %s (stale statistics) in %.2f s", name, time.monotonic() - started)
    return stale
