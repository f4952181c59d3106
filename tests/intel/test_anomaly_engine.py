"""The vectorised engine (`score_matrix`, many series at once) against the day-by-day definition of
robust_weekday_mad_v2 written out plainly below: identical findings, values and inputs on random
series of every shape (weekly patterns, noise, outages, sparse bursts, young series)."""

from datetime import date, timedelta

import numpy as np
import pytest

from analytics.anomalies import (DENSE_FRACTION, DROP_RATIO, MAD_SCALE, MIN_HISTORY_DAYS, SPIKE_RATIO,
                                 SPREAD_FLOOR_FRACTION, WINDOW_DAYS, score_matrix, score_series)

MON = date(2026, 1, 5)


def _loo(window, wd):
    out = []
    for w in np.unique(wd):
        values = np.sort(window[wd == w])
        n = len(values)
        if n < 2:
            continue
        m = n - 1
        for k in range(n):
            rest = np.delete(values, k)
            median = rest[m // 2] if m % 2 else (rest[m // 2 - 1] + rest[m // 2]) / 2
            out.append(values[k] - median)
    return np.array(out) if out else np.zeros(1)


def _day(values, weekdays, i, threshold):
    if i < MIN_HISTORY_DAYS or i >= len(values):
        return None
    lo = max(0, i - WINDOW_DAYS)
    window, wd = values[lo:i], weekdays[lo:i]
    if np.count_nonzero(window) < DENSE_FRACTION * len(window):
        return None
    same = window[wd == weekdays[i]]
    overall = float(np.median(window))
    flat = np.abs(window - overall)
    weekly = np.abs(_loo(window, wd))
    weekday_model = len(same) >= 2 and float(np.mean(weekly)) <= float(np.mean(flat))
    expected = float(np.median(same)) if weekday_model else overall
    mad = float(np.median(weekly if weekday_model else flat))
    spread = max(MAD_SCALE * mad, SPREAD_FLOOR_FRACTION * max(expected, overall / 4), 1.0)
    observed = float(values[i])
    if observed > 0:
        spread = max(spread, float(np.sqrt(max(expected, 0.0))))
    score = (observed - expected) / spread
    if observed == 0 and expected > 0 and score <= -threshold:
        kind = "zero_usage"
    elif observed > 0 and observed <= DROP_RATIO * expected and score <= -threshold:
        kind = "drop"
    elif observed >= SPIKE_RATIO * expected and score >= threshold:
        kind = "spike"
    else:
        return None
    return kind, observed, expected, score, mad, spread, "weekday" if weekday_model else "flat"


def reference(values, first_day, days, threshold):
    weekdays = (np.arange(len(values)) + first_day.weekday()) % 7
    out = []
    for day in days:
        i = (day - first_day).days
        found = _day(values, weekdays, i, threshold)
        if found is None:
            continue
        before = _day(values, weekdays, i - 1, threshold)
        direction = (lambda kind: 1 if kind == "spike" else -1)
        if before is not None and direction(before[0]) == direction(found[0]):
            continue
        out.append((day, *found))
    return out


def random_series(rng, n):
    shape = rng.integers(5)
    level = float(rng.choice([3, 40, 1000, 25000]))
    if shape == 0:  # weekly pattern
        week = rng.uniform(0.1, 1.0, 7) * level
        values = np.tile(week, n // 7 + 1)[:n] * rng.uniform(0.9, 1.1, n)
    elif shape == 1:  # noise
        values = level * rng.uniform(0.3, 1.7, n)
    elif shape == 2:  # integers with outages
        values = rng.poisson(level, n).astype(float)
        values[rng.integers(n, size=3)] = 0
    elif shape == 3:  # sparse bursts
        values = np.where(rng.uniform(size=n) < 0.3, level, 0.0)
    else:  # flat with exact ties
        values = np.full(n, level)
    spikes = rng.integers(n, size=2)
    values[spikes] *= rng.choice([0.0, 0.2, 3.0, 8.0])
    return np.round(values, int(rng.integers(0, 3)))


@pytest.mark.parametrize("seed", range(6))
def test_matrix_equals_the_day_by_day_definition(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(16, 70))
    first = MON + timedelta(days=int(rng.integers(7)))
    matrix = np.vstack([random_series(rng, n) for _ in range(40)])
    days = [first + timedelta(days=i) for i in range(n)]
    got = score_matrix(values=matrix, first_day=first, days=days, threshold=4.5)
    expected = [(r, *f) for r in range(len(matrix)) for f in reference(matrix[r], first, days, 4.5)]
    assert len(expected) >= 10  # spikes, drops and outages are found, so the comparison means something
    assert sorted((r, d) for r, d, *_ in got) == sorted((r, d) for r, d, *_ in expected)
    by_key = {(r, d): (kind, obs, exp, score, inputs) for r, d, kind, obs, exp, score, inputs in got}
    for r, day, kind, observed, exp, score, mad, spread, model in expected:
        got_kind, got_obs, got_exp, got_score, inputs = by_key[(r, day)]
        assert (got_kind, got_obs, got_exp, got_score) == (kind, observed, exp, score)
        assert (inputs["mad"], inputs["spread"], inputs["model"]) == (
            round(mad, 6) if not float(mad).is_integer() else int(mad),
            round(spread, 6) if not float(spread).is_integer() else int(spread), model)
    # one series alone scores the same as inside the matrix
    one = score_series(values=matrix[3], first_day=first, days=days, threshold=4.5)
    assert [f[:5] for f in one] == [f[1:6] for f in got if f[0] == 3]
