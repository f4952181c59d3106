from datetime import date, datetime, timezone

from common.timeutil import local_date, local_date_bounds_utc


def test_bounds_in_auckland_and_los_angeles():
    # Auckland is UTC+13 in January (NZDT): local Jan 1 00:00 is Dec 31 11:00 UTC.
    start, end = local_date_bounds_utc(date(2026, 1, 1), date(2026, 2, 1), "Pacific/Auckland")
    assert start == datetime(2025, 12, 31, 11, tzinfo=timezone.utc)
    assert end == datetime(2026, 1, 31, 11, tzinfo=timezone.utc)
    # Los Angeles switches to PDT on 2026-03-08: March starts at UTC-8, April at UTC-7.
    start, end = local_date_bounds_utc(date(2026, 3, 1), date(2026, 4, 1), "America/Los_Angeles")
    assert start == datetime(2026, 3, 1, 8, tzinfo=timezone.utc)
    assert end == datetime(2026, 4, 1, 7, tzinfo=timezone.utc)


def test_local_date_of_instant():
    instant = datetime(2026, 1, 31, 23, 30, tzinfo=timezone.utc)
    assert local_date(instant, "UTC") == date(2026, 1, 31)
    assert local_date(instant, "Pacific/Auckland") == date(2026, 2, 1)
    assert local_date(instant, "America/Los_Angeles") == date(2026, 1, 31)
