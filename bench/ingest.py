"""Ingestion throughput through the real HTTP stack: the web server as `make demo` runs it (granian,
2 worker processes of 2 threads) on 127.0.0.1 against a dedicated database (ledgerline_bench, created
and migrated here). Clients keep their connections alive, as HTTP/1.1 clients do.

    .venv/bin/python bench/ingest.py [--single 6000] [--threads 8] [--batches 60] [--batch-size 1000]
    .venv/bin/python bench/ingest.py --growth 2000000 [--round 200000] [--batch-threads 4]

Prints events/s for single posts (concurrent client threads, one event per request) and for batch
posts (1000 events per request), then checks that every accepted event is in the database once.
Targets on the 2-core machine (issue 20): single >= 1,000 events/s, batch >= 20,000 events/s.

Growth mode (`--growth N`): posts N events in 1,000-event batches, in rounds of `--round` events, and
prints events/s per round and the stored event count before it; the last round must be within 20 %
of the first (ingestion cost must not grow with the events already stored). Bodies are generated
per round, so memory stays flat; statistics are never refreshed by hand.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
import sys

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ensure_database, psql_connect, setup_django, web_server  # noqa: E402

CUSTOMERS = 200


def seed() -> str:
    """Customers with one subscription each charging a count and a sum metric; returns an API key."""
    from datetime import date

    from django.utils import timezone

    from catalog.models import BillableMetric, Charge, Plan, PlanVersion
    from customers.models import Customer
    from customers.services import api_key_create
    from subscriptions.models import Subscription

    calls, _ = BillableMetric.objects.get_or_create(code="bench_calls", defaults={"name": "calls", "aggregation": "count"})
    gb, _ = BillableMetric.objects.get_or_create(code="bench_gb", defaults={"name": "gb", "aggregation": "sum", "field": "gb"})
    plan, _ = Plan.objects.get_or_create(code="bench_plan", defaults={"name": "bench", "currency": "USD", "interval": "month"})
    version, created = PlanVersion.objects.get_or_create(plan=plan, version=1)
    if created:
        Charge.objects.create(plan_version=version, billable_metric=calls, model="standard", properties={"unit_amount": "0.001"})
        Charge.objects.create(plan_version=version, billable_metric=gb, model="standard", properties={"unit_amount": "0.1"})
    start = timezone.now().date() - timedelta(days=40)
    for n in range(CUSTOMERS):
        customer, _ = Customer.objects.get_or_create(external_id=f"bench_cus_{n}", defaults={"name": f"Bench {n}", "currency": "USD"})
        Subscription.objects.get_or_create(external_id=f"bench_sub_{n}", defaults={
            "customer": customer, "plan_version": version, "start_date": min(start, date.today())})
    _, raw = api_key_create(name=f"bench-{uuid.uuid4().hex[:8]}", scopes=["usage:write"])
    return raw


def make_event(run: str, n: int, now_iso: str) -> dict:
    body = {"transaction_id": f"{run}-{n}", "customer": f"bench_cus_{n % CUSTOMERS}", "timestamp": now_iso}
    if n % 2:
        body.update(code="bench_gb", properties={"gb": f"{n % 97}.25", "region": "eu"})
    else:
        body.update(code="bench_calls", properties={"endpoint": "/v1/things"})
    return body


def run_requests(base: str, key: str, path: str, bodies: list[bytes], threads: int) -> tuple[float, dict[int, int], list[float]]:
    host, port = base.removeprefix("http://").split(":")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    lock = threading.Lock()
    cursor = iter(range(len(bodies)))

    def worker():
        local_status: dict[int, int] = {}
        local_lat: list[float] = []
        conn = None
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                break
            for attempt in range(3):  # a connection the server closed is opened again
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(host, int(port), timeout=60)
                    t0 = time.perf_counter()
                    conn.request("POST", path, body=bodies[i], headers=headers)
                    response = conn.getresponse()
                    response.read()
                    local_lat.append(time.perf_counter() - t0)
                    local_status[response.status] = local_status.get(response.status, 0) + 1
                    if response.getheader("Connection", "").lower() == "close":
                        conn.close()
                        conn = None
                    break
                except (ConnectionError, http.client.HTTPException):
                    if conn:
                        conn.close()
                    conn = None
                    if attempt == 2:
                        raise
        with lock:
            for k, v in local_status.items():
                statuses[k] = statuses.get(k, 0) + v
            latencies.extend(local_lat)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - t0, statuses, latencies


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] * 1000


def growth(args) -> None:
    from django.utils import timezone

    key = seed()
    run = uuid.uuid4().hex[:10]
    now_iso = (timezone.now() - timedelta(seconds=30)).isoformat()
    rounds = max(1, args.growth // args.round)
    per_round = args.round // args.batch_size
    rates = []
    with web_server(workers=args.workers, threads=args.worker_threads) as base:
        warm = [json.dumps(make_event(run + "w", n, now_iso)).encode() for n in range(200)]
        run_requests(base, key, "/api/v1/events/", warm, 4)
        n = 0
        for r in range(rounds):
            bodies = []
            for _ in range(per_round):
                events = [make_event(run, n + i, now_iso) for i in range(args.batch_size)]
                n += args.batch_size
                bodies.append(json.dumps({"events": events}).encode())
            elapsed, statuses, lat = run_requests(base, key, "/api/v1/events/batch/", bodies, args.batch_threads)
            rate = per_round * args.batch_size / elapsed
            rates.append(rate)
            print(f"round {r + 1:3d}/{rounds}: {r * per_round * args.batch_size:>10,} stored before -> {rate:,.0f} events/s "
                  f"(p50 {pct(lat, .5):.0f} ms per batch, max {max(lat) * 1000:.0f} ms) statuses {statuses}", flush=True)
    with psql_connect() as conn:
        stored = conn.execute("SELECT count(*) FROM usage_event WHERE transaction_id LIKE %s", (f"{run}-%",)).fetchone()[0]
        seq = conn.execute("SELECT relname, seq_scan FROM pg_stat_user_tables WHERE relname IN "
                           "('usage_event_key', 'usage_rollup_daily', 'usage_rollup_unique')").fetchall()
    print(f"stored: {stored:,} of {n:,} posted: {'OK' if stored == n else 'MISMATCH'}; sequential scans: {dict(seq)}")
    ratio = rates[-1] / rates[0]
    print(f"growth: first round {rates[0]:,.0f}/s, last round {rates[-1]:,.0f}/s, last/first {ratio:.2f} "
          f"({'PASS' if ratio >= 0.8 else 'FAIL'}: within 20 %); mean {statistics.mean(rates):,.0f}/s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--single", type=int, default=6000, help="single-event requests")
    parser.add_argument("--threads", type=int, default=8, help="client threads for single posts")
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--batch-threads", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="web server worker processes")
    parser.add_argument("--worker-threads", type=int, default=2, help="threads running Django in each worker")
    parser.add_argument("--fresh", action="store_true", help="drop and recreate the bench database first")
    parser.add_argument("--growth", type=int, default=0, help="growth mode: post this many events in rounds")
    parser.add_argument("--round", type=int, default=200_000, help="events per growth round")
    args = parser.parse_args()

    ensure_database(fresh=args.fresh)
    setup_django()
    if args.growth:
        growth(args)
        return
    from django.utils import timezone

    key = seed()
    run = uuid.uuid4().hex[:10]
    now_iso = (timezone.now() - timedelta(seconds=30)).isoformat()

    single_bodies = [json.dumps(make_event(run, n, now_iso)).encode() for n in range(args.single)]
    offset = args.single
    batch_bodies = []
    for b in range(args.batches):
        events = [make_event(run, offset + b * args.batch_size + i, now_iso) for i in range(args.batch_size)]
        batch_bodies.append(json.dumps({"events": events}).encode())
    warm = [json.dumps(make_event(run + "w", n, now_iso)).encode() for n in range(200)]

    with web_server(workers=args.workers, threads=args.worker_threads) as base:
        run_requests(base, key, "/api/v1/events/", warm, args.threads)
        elapsed, statuses, lat = run_requests(base, key, "/api/v1/events/", single_bodies, args.threads)
        single_rate = args.single / elapsed
        print(f"single: {args.single} events, {args.threads} client threads, {elapsed:.2f} s -> {single_rate:,.0f} events/s "
              f"(p50 {pct(lat, .5):.1f} ms, p99 {pct(lat, .99):.1f} ms) statuses {statuses}")

        elapsed, statuses, lat = run_requests(base, key, "/api/v1/events/batch/", batch_bodies, args.batch_threads)
        total = args.batches * args.batch_size
        batch_rate = total / elapsed
        print(f"batch:  {args.batches} x {args.batch_size} events, {args.batch_threads} client threads, {elapsed:.2f} s -> "
              f"{batch_rate:,.0f} events/s (p50 {pct(lat, .5):.0f} ms per batch, max {max(lat) * 1000:.0f} ms) "
              f"statuses {statuses}")

    with psql_connect() as conn:
        stored = conn.execute("SELECT count(*), count(DISTINCT transaction_id) FROM usage_event WHERE transaction_id LIKE %s",
                              (f"{run}-%",)).fetchone()
    expected = args.single + total
    print(f"stored: {stored[0]} events ({stored[1]} distinct ids), expected {expected}: {'OK' if stored == (expected, expected) else 'MISMATCH'}")
    print(f"targets: single >= 1,000/s {'PASS' if single_rate >= 1000 else 'FAIL'}; batch >= 20,000/s {'PASS' if batch_rate >= 20000 else 'FAIL'}")


if __name__ == "__main__":
    main()
