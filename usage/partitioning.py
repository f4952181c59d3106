"""Monthly partitions of `usage_event` (UTC calendar months).

Partitions are created by migration 0001 (last month to three months ahead), by the
`usage.tasks.usage_partitions_ensure_ahead` task, and on demand by ingestion for any timestamp
(`usage_partition_ensure`), so an insert never meets a missing partition for long.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from django.db import connection

# Months this process has seen created. A stale entry (partition dropped, or created inside a
# rolled-back transaction) is harmless: the insert fails with "no partition", the cache is
# cleared and the insert is retried once after ensuring the partition.
_known_months: set[tuple[int, int]] = set()


def month_key(instant: datetime) -> tuple[int, int]:
    utc = instant.astimezone(timezone.utc)
    return utc.year, utc.month


def partition_name(instant: datetime) -> str:
    year, month = month_key(instant)
    return f"usage_event_y{year:04d}m{month:02d}"


def usage_partition_ensure(*, timestamp: datetime) -> str:
    """Create the partition holding `timestamp` if it does not exist; returns its name."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT usage_event_ensure_partition(%s)", [timestamp])
        name = cursor.fetchone()[0]
    _known_months.add(month_key(timestamp))
    return name


def usage_partitions_ensure_for(*, timestamps) -> None:
    """Ensure partitions for every month among `timestamps` this process has not seen yet."""
    missing: dict[tuple[int, int], datetime] = {}
    for ts in timestamps:
        key = month_key(ts)
        if key not in _known_months and key not in missing:
            missing[key] = ts
    for ts in missing.values():
        usage_partition_ensure(timestamp=ts)


def usage_partitions_ensure_ahead(*, months_back: int = 1, months_ahead: int = 3) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT usage_event_ensure_partitions_ahead(%s, %s)", [months_back, months_ahead])
        return [row[0] for row in cursor.fetchall()]


def usage_partitions_list() -> list[tuple[str, date]]:
    """(partition name, first day of its month) for every existing partition, oldest first."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname FROM pg_inherits i
            JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'usage_event'::regclass ORDER BY c.relname
            """
        )
        names = [row[0] for row in cursor.fetchall()]
    return [(n, date(int(n[13:17]), int(n[18:20]), 1)) for n in names]


def forget_known_partitions() -> None:
    _known_months.clear()


def is_missing_partition_error(exc: BaseException) -> bool:
    cause = exc.__cause__ or exc
    return getattr(cause, "sqlstate", None) == "23514" and "no partition" in str(cause)
