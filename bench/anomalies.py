"""Anomaly detection benchmark: precision, recall and false alarms on seeded synthetic usage.

    .venv/bin/python bench/anomalies.py [--customers 400] [--days 182] [--seed 17]

No database: the detector's engine (`analytics.anomalies.detect_in_frame`, what `detect_anomalies`
runs on the rows it reads) scores every day after the 28th of each series, once, as the daily scan
would. Synthetic usage per customer (one metric each), deterministic from --seed:
- level: log-uniform between 20 and 20,000 units a day; half the customers have quiet weekends
  (25–60 % of a weekday); a slow trend of −30 %…+50 % over the span;
- noise: Poisson on the expected count times a log-normal factor (σ = 8 %);
- injected anomalies, each day with probability 1/150 from day 35 on: spikes (× 2.5–6), drops
  (× 0.05–0.4) and zero days, one third each.
A flag on an injected day counts as a true positive when its kind matches (a drop may be flagged as
drop or zero usage and a zero day as zero usage); every other flag is a false alarm. Targets:
precision ≥ 0.9, recall ≥ 0.85, ≤ 0.05 false alarms per customer-month (30 days).

A second line measures false alarms on noisy usage with nothing injected (--noisy customers, like the
demo's: uniform between 0.3 and 1.7 × a log-uniform level every day, no weekly pattern): every flag
there is a false alarm.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_site.settings.base")

FIRST = date(2026, 1, 5)  # a Monday


def synthesize(customers: int, days: int, rng):
    rows, truth = [], {}
    for sub in range(1, customers + 1):
        level = float(np.exp(rng.uniform(np.log(20), np.log(20_000))))
        weekend = rng.uniform(0.25, 0.6) if rng.random() < 0.5 else 1.0
        trend = rng.uniform(-0.3, 0.5)
        for i in range(days):
            d = FIRST + timedelta(days=i)
            mean = level * (weekend if d.weekday() >= 5 else 1.0) * (1 + trend * i / days)
            value = rng.poisson(mean) * float(np.exp(rng.normal(0, 0.08)))
            if i >= 35 and rng.random() < 1 / 150:
                kind = ("spike", "drop", "zero")[int(rng.integers(3))]
                truth[(sub, d)] = kind
                value = {"spike": value * rng.uniform(2.5, 6), "drop": value * rng.uniform(0.05, 0.4), "zero": 0.0}[kind]
            value = round(value)
            if value:
                rows.append((sub, 1, d, value))
    return rows, truth


def synthesize_noisy(customers: int, days: int, rng):
    rows = []
    for sub in range(1, customers + 1):
        level = float(np.exp(rng.uniform(np.log(200), np.log(20_000))))
        for i in range(days):
            value = round(level * rng.uniform(0.3, 1.7))
            if value:
                rows.append((sub, 1, FIRST + timedelta(days=i), value))
    return rows


MATCH = {"spike": {"spike"}, "drop": {"drop", "zero_usage"}, "zero": {"zero_usage"}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--days", type=int, default=182)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--noisy", type=int, default=200)
    args = parser.parse_args()
    import django

    django.setup()
    from analytics.anomalies import detect_in_frame, score_threshold

    rng = np.random.default_rng(args.seed)
    rows, truth = synthesize(args.customers, args.days, rng)
    scored = [FIRST + timedelta(days=i) for i in range(28, args.days)]
    bounds = {sub: (FIRST, None) for sub in range(1, args.customers + 1)}
    t0 = time.monotonic()
    findings = detect_in_frame(rows=rows, bounds=bounds, days=scored)
    elapsed = time.monotonic() - t0
    tp = sum(1 for f in findings if f.kind in MATCH.get(truth.get((f.subscription_id, f.day)), ()))
    fp = len(findings) - tp
    injected = sum(1 for (sub, d) in truth if d >= scored[0])
    customer_months = args.customers * len(scored) / 30
    precision = tp / len(findings) if findings else 1.0
    recall = tp / injected if injected else 1.0
    by_kind = {}
    for kind in ("spike", "drop", "zero"):
        keys = [k for k, v in truth.items() if v == kind]
        hit = {(f.subscription_id, f.day) for f in findings if f.kind in MATCH[kind]}
        by_kind[kind] = f"{sum(1 for k in keys if k in hit)}/{len(keys)}"
    print(f"{args.customers} customers × {len(scored)} scored days ({customer_months:.0f} customer-months), "
          f"threshold {score_threshold()}: {len(findings)} flags, {injected} injected anomalies")
    print(f"precision {precision:.3f} (target ≥ 0.9), recall {recall:.3f} (target ≥ 0.85), "
          f"false alarms {fp / customer_months:.4f} per customer-month (target ≤ 0.05); recall by kind {by_kind}")
    print(f"scored {args.customers * len(scored):,} subscription-days in {elapsed:.1f} s")
    if args.noisy:
        noisy = synthesize_noisy(args.noisy, args.days, rng)
        flagged = detect_in_frame(rows=noisy, bounds={sub: (FIRST, None) for sub in range(1, args.noisy + 1)},
                                  days=scored)
        months = args.noisy * len(scored) / 30
        print(f"noisy usage (±70 % a day, nothing injected), {args.noisy} customers ({months:.0f} customer-months): "
              f"{len(flagged)} flags = {len(flagged) / months:.4f} false alarms per customer-month")


if __name__ == "__main__":
    main()
