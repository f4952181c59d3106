"""The pure schedule engine: retry days, smart hour, pay-day alignment, window."""

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from dunning.schedule import best_hour, last_business_day, next_local_hour, pay_days, retry_instants

UTC = ZoneInfo("UTC")
NY = ZoneInfo("America/New_York")


def test_pay_days():
    assert last_business_day(2026, 2) == date(2026, 2, 27)  # Feb 28 2026 is a Saturday
    assert pay_days(date(2026, 2, 10), date(2026, 3, 2)) == [date(2026, 2, 15), date(2026, 2, 27), date(2026, 3, 1)]


def test_best_hour_from_history_in_local_time():
    # 14:00 UTC is 09:00 in New York (EST); two successes at 09:00 local beat one at 15:00.
    hist = [datetime(2026, 1, 5, 14, tzinfo=timezone.utc), datetime(2026, 1, 20, 14, 30, tzinfo=timezone.utc),
            datetime(2026, 2, 3, 20, tzinfo=timezone.utc)]
    hour, used = best_hour(hist, NY, 10)
    assert hour == 9 and used["successes"] == 3 and used["by_hour"] == {"9": 2, "15": 1}
    assert best_hour([], NY, 10) == (10, {"source": "default", "hour": 10, "successes": 0})
    # A tie goes to the most recent success's hour.
    assert best_hour([datetime(2026, 1, 1, 8, tzinfo=timezone.utc), datetime(2026, 1, 2, 17, tzinfo=timezone.utc)],
                     UTC, 10)[0] == 17


def test_next_local_hour_never_earlier():
    t = datetime(2026, 3, 4, 15, 0, tzinfo=timezone.utc)
    assert next_local_hour(t, 10, UTC) == datetime(2026, 3, 5, 10, tzinfo=UTC)
    assert next_local_hour(t, 16, UTC) == datetime(2026, 3, 4, 16, tzinfo=UTC)


def test_default_retry_days_at_the_local_hour():
    t0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)  # a Monday; no pay day alignment
    steps = retry_instants(first_failed_at=t0, tz=UTC, days=[1, 3, 6, 10], max_retries=4, window_days=14, hour=10)
    assert [s.at for s in steps] == [datetime(2026, 3, d, 10, tzinfo=UTC) for d in (3, 5, 8, 12)]
    assert all(s.at >= t0 + timedelta(days=d) for s, d in zip(steps, (1, 3, 6, 10)))


def test_pay_day_moves_retries_later_inside_the_window_only():
    # First failure Mar 20 2026 10:00 UTC; window ends Apr 3. Pay days inside: Mar 31 (last business day), Apr 1.
    t0 = datetime(2026, 3, 20, 10, 0, tzinfo=timezone.utc)
    steps = retry_instants(first_failed_at=t0, tz=UTC, days=[1, 3, 6, 10], max_retries=4, window_days=14, hour=10,
                           payday=True)
    dates = [s.at.date() for s in steps]
    # Day 1 (Mar 21) → Mar 31, day 3 (Mar 23) → Apr 1; days 6 and 10 find no free pay day and stand.
    assert dates == [date(2026, 3, 26), date(2026, 3, 30), date(2026, 3, 31), date(2026, 4, 1)]
    moved = [s for s in steps if s.rule == "retry_schedule_pay_day"]
    assert [(s.inputs["moved_from"], s.inputs["pay_day"]) for s in moved] == [("2026-03-21", "2026-03-31"),
                                                                               ("2026-03-23", "2026-04-01")]
    # Apr 15 is the one free pay day: retry 1 moves there; the others find none free and stand.
    t1 = datetime(2026, 4, 2, 10, 0, tzinfo=timezone.utc)  # window to Apr 16; Apr 15 is a pay day
    plain = retry_instants(first_failed_at=t1, tz=UTC, days=[1, 3, 6, 10], max_retries=4, window_days=14, hour=10)
    aligned = retry_instants(first_failed_at=t1, tz=UTC, days=[1, 3, 6, 10], max_retries=4, window_days=14, hour=10,
                             payday=True)
    assert [s.at.date() for s in aligned] == [date(2026, 4, 5), date(2026, 4, 8), date(2026, 4, 12), date(2026, 4, 15)]
    assert [s.at.date() for s in plain] == [date(2026, 4, 3), date(2026, 4, 5), date(2026, 4, 8), date(2026, 4, 12)]
    t2 = datetime(2026, 5, 2, 10, 0, tzinfo=timezone.utc)  # window May 2–16 holds May 15: day 1 moves there
    short = retry_instants(first_failed_at=t2, tz=UTC, days=[1], max_retries=1, window_days=5, hour=10, payday=True)
    assert [s.at.date() for s in short] == [date(2026, 5, 3)]  # window ends May 7: no pay day, stands


def test_first_retry_within_hours_and_max_retries():
    t0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)
    steps = retry_instants(first_failed_at=t0, tz=UTC, days=[1, 3, 6, 10], max_retries=2, window_days=14, hour=10,
                           first_retry_hours=2)
    assert [s.at for s in steps] == [datetime(2026, 3, 2, 10, tzinfo=timezone.utc), datetime(2026, 3, 5, 10, tzinfo=UTC)]


def test_fixed_schedule_keeps_the_failure_time_of_day():
    t0 = datetime(2026, 3, 2, 8, 17, tzinfo=timezone.utc)
    steps = retry_instants(first_failed_at=t0, tz=NY, days=[1, 3, 5, 7], max_retries=4, window_days=14, hour=10,
                           payday=True, fixed_time_of_day=True)
    assert [s.at for s in steps] == [t0 + timedelta(days=d) for d in (1, 3, 5, 7)]
