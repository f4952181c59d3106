"""Scale benchmark: usage ingestion, billing, live usage and rollup lag as the event store grows.

    .venv/bin/python bench/scale.py [--points 1000000,3000000,10000000] [--subscriptions 10000]
                                    [--load sql|http] [--sample 50000] [--batch-threads 4] [--png docs/scale.png]

One database (ledgerline_bench_scale unless BENCH_DB says otherwise), recreated. 10,000 customers
(four timezones) with one subscription each (even: API access, count metric, in arrears with a
minimum; odd: Growth, graduated count + storage sum, fee in advance), created with set-based SQL
and ANALYZEd while they have no events — so every later plan runs on statistics that predate the
load, as at a month-end after a fresh import. Then, for each point of the growth curve:

1. load events until the store holds the point's count; October 2026 and November 2026 up to
   now, so the run closes October and live usage reads November:
   - `--load sql` (default): generated with INSERT … SELECT generate_series, 1 M rows per
     statement, with their idempotency keys, then the daily rollups rebuilt from the events
     (`usage.rollups.usage_rollups_rebuild`); no ANALYZE of the events; a CHECKPOINT and an OS sync
     let the load's write-back finish (it is not ingest cost). Then a sample of `--sample` events
     is posted through the real HTTP stack (the web server, 2 workers, `POST /api/v1/events/batch/`,
     1,000 events per request, events addressed by customer): the ingest rate *at that size*;
   - `--load http`: every event through HTTP (slow: the 10 M point takes 10 M / rate seconds;
     `bench/ingest.py --growth` measures flat ingestion on its own);
2. rollup lag: events stored vs events counted by the daily rollups (maintained in the ingest
   statement, so the lag is expected to be zero events);
3. live usage: p50/p99 of `GET /api/v1/subscriptions/{id}/usage/` over random subscriptions;
4. the billing run as of 2026-11-01 in a child process (wall time, peak RSS), two invoices checked
   against totals computed from the raw events; then its invoices are removed and the cursors
   reset, so the next point bills the same period with more events.

Prints one row per point, the growth of each figure against the first point, and with --png a
growth-curve chart (matplotlib).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

os.environ.setdefault("BENCH_DB", "ledgerline_bench_scale")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (PYTHON, ROOT, bench_env, ensure_database, psql_connect, rollups_rebuild,  # noqa: E402
                           setup_django, web_server)
from bench.ingest import pct, run_requests  # noqa: E402

TIMEZONES = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Tokyo"]
AS_OF = "2026-11-01"
EVENTS_FROM = datetime(2026, 10, 2, tzinfo=timezone.utc)


def seed(n_subs: int) -> None:
    with psql_connect() as conn:
        conn.execute("""
            INSERT INTO catalog_billablemetric (code, name, description, aggregation, field, allow_negative, created_at,
                                                updated_at)
            VALUES ('api_calls', 'API calls', '', 'count', '', false, now(), now()),
                   ('storage_gb', 'Storage', '', 'sum', 'gb', false, now(), now())""")
        conn.execute("""
            INSERT INTO catalog_plan (code, name, description, currency, interval, created_at, updated_at)
            VALUES ('api_access', 'API access', '', 'USD', 'month', now(), now()),
                   ('growth', 'Growth', '', 'USD', 'month', now(), now())""")
        conn.execute("""
            INSERT INTO catalog_planversion (plan_id, version, amount, pay_in_advance, trial_days, minimum_commitment,
                                             customer_id, based_on_id, created_at, updated_at)
            SELECT id, 1, CASE code WHEN 'api_access' THEN 0 ELSE 49 END, code = 'growth', 0,
                   CASE code WHEN 'api_access' THEN 200 ELSE NULL END, NULL, NULL, now(), now()
            FROM catalog_plan""")
        conn.execute("""
            INSERT INTO catalog_charge (plan_version_id, billable_metric_id, model, properties, position,
                                        invoice_display_name, created_at, updated_at)
            SELECT v.id, m.id, c.model, c.props::jsonb, c.pos, '', now(), now()
            FROM (VALUES ('api_access', 'api_calls', 'standard', '{"unit_amount": "0.004"}', 0),
                         ('growth', 'api_calls', 'graduated',
                          '{"tiers": [{"up_to": 500, "unit_amount": "0.01", "flat_amount": "0"},
                                      {"up_to": null, "unit_amount": "0.005", "flat_amount": "0"}]}', 0),
                         ('growth', 'storage_gb', 'standard', '{"unit_amount": "0.10"}', 1)) AS c(plan, metric, model, props, pos)
            JOIN catalog_plan p ON p.code = c.plan JOIN catalog_planversion v ON v.plan_id = p.id
            JOIN catalog_billablemetric m ON m.code = c.metric""")
        conn.execute("""
            INSERT INTO customers_customer (external_id, name, currency, email, billing_email, timezone, country, region,
                address, tax_id, tax_exempt, collection_method, net_terms_days, invoice_grace_period_days, metadata,
                stripe_customer_id, created_at, updated_at)
            SELECT 'scale_' || g, 'Scale customer ' || g, 'USD', '', '', (%s::text[])[1 + g %% 4], 'US', '', '', '',
                   false, 'send_invoice', 30, 0, '{}'::jsonb, '', now(), now()
            FROM generate_series(0, %s - 1) g""", (TIMEZONES, n_subs))
        conn.execute("""
            INSERT INTO subscriptions_subscription (external_id, customer_id, plan_version_id, quantity, billing_time,
                status, start_date, trial_end_date, end_date, cancel_at_period_end, canceled_at,
                usage_billed_through, advance_billed_through, created_at, updated_at)
            SELECT 'scale_sub_' || substr(c.external_id, 7), c.id, v.id, 1, 'calendar', 'active', DATE '2026-10-01',
                   NULL, NULL, false, NULL, NULL, CASE WHEN p.code = 'growth' THEN DATE '2026-11-01' END, now(), now()
            FROM customers_customer c
            JOIN catalog_plan p ON p.code = CASE WHEN substr(c.external_id, 7)::int % 2 = 0 THEN 'api_access' ELSE 'growth' END
            JOIN catalog_planversion v ON v.plan_id = p.id""")
        conn.execute("""
            INSERT INTO subscriptions_subscriptionchange (subscription_id, kind, effective_date, created_at, applied_at,
                to_plan_version_id, to_quantity, from_status, to_status, actor, inputs)
            SELECT id, 'created', start_date, now(), now(), plan_version_id, quantity, '', status, 'bench', '{}'::jsonb
            FROM subscriptions_subscription""")
        conn.execute("ANALYZE")  # statistics of an empty event store: every later plan runs on these


def make_bodies(n_subs: int, start: int, count: int, span_seconds: int, batch: int, run: str) -> list[bytes]:
    bodies = []
    for lo in range(start, start + count, batch):
        events = []
        for g in range(lo, min(lo + batch, start + count)):
            customer = (g * 7) % n_subs
            ts = EVENTS_FROM + timedelta(seconds=(g * 7919) % span_seconds)
            event = {"transaction_id": f"{run}-{g}", "customer": f"scale_{customer}", "timestamp": ts.isoformat()}
            if customer % 2 and g % 10 == 1:  # odd customers (Growth) only: 7g ends in 7
                event.update(code="storage_gb", properties={"gb": f"{g % 7}.5"})
            else:
                event.update(code="api_calls", properties={"endpoint": "/v1/things"})
            events.append(event)
        bodies.append(json.dumps({"events": events}).encode())
    return bodies


def load_sql(n_subs: int, start: int, count: int, span_seconds: int, run: str) -> None:
    """Events [start, start + count) of the same sequence make_bodies posts, generated in SQL with
    their idempotency keys (one statement per million), then the daily rollups rebuilt."""
    with psql_connect() as conn:
        conn.execute("SELECT usage_event_ensure_partition(%s)", (EVENTS_FROM,))
        conn.execute("SELECT usage_event_ensure_partition(now())")
        conn.execute("""CREATE TEMP TABLE bench_sub AS SELECT substr(external_id, 11)::int AS n, id, customer_id
                        FROM subscriptions_subscription WHERE external_id LIKE 'scale_sub_%%'""")
        conn.execute("CREATE UNIQUE INDEX ON bench_sub (n)")
        metrics = dict(conn.execute("SELECT code, id FROM catalog_billablemetric").fetchall())
        for lo in range(start, start + count, 1_000_000):
            hi = min(lo + 1_000_000, start + count) - 1
            conn.execute("""
                WITH ev AS (
                    INSERT INTO usage_event (transaction_id, customer_id, subscription_id, metric_id, "timestamp",
                                             properties, value, unique_value, received_at, is_late)
                    SELECT %(run)s || '-' || g, s.customer_id, s.id,
                           CASE WHEN s.n %% 2 = 1 AND g %% 10 = 1 THEN %(gb)s ELSE %(calls)s END,
                           %(origin)s + ((g::bigint * 7919) %% %(span)s) * interval '1 second',
                           CASE WHEN s.n %% 2 = 1 AND g %% 10 = 1 THEN jsonb_build_object('gb', (g %% 7) || '.5')
                                ELSE '{"endpoint": "/v1/things"}'::jsonb END,
                           CASE WHEN s.n %% 2 = 1 AND g %% 10 = 1 THEN (g %% 7) + 0.5 END, NULL, now(), false
                    FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) g
                    JOIN bench_sub s ON s.n = (g * 7) %% %(n)s
                    RETURNING id, transaction_id, "timestamp"
                )
                INSERT INTO usage_event_key (transaction_id, payload_hash, event_id, event_timestamp, created_at)
                SELECT transaction_id, sha256(convert_to(transaction_id, 'UTF8')), id, "timestamp", now() FROM ev
            """, {"run": run, "gb": metrics["storage_gb"], "calls": metrics["api_calls"], "origin": EVENTS_FROM,
                  "span": span_seconds, "lo": lo, "hi": hi, "n": n_subs})
        rollups_rebuild()
    settle_writes()


def settle_writes() -> float:
    """CHECKPOINT, then flush the OS's dirty pages: a bulk load leaves gigabytes being written back, and
    an ingest sample timed during that write-back measures the disk, not the ingest path (the 10 M point
    read 7.5k events/s right after its 7 M-row load and 11.4k fifteen minutes later, same data)."""
    started = time.monotonic()
    with psql_connect() as conn:
        conn.execute("CHECKPOINT")
    os.sync()
    return time.monotonic() - started


def bill_child() -> None:
    """In a child process: one billing run, printed as JSON (wall time, peak RSS, counts, checks)."""
    import resource
    from datetime import date

    setup_django()
    from invoicing.billing import billing_run
    from invoicing.models import Invoice

    started = time.monotonic()
    run = billing_run(as_of=date.fromisoformat(AS_OF), auto_finalize=False, actor="bench:scale")
    wall = time.monotonic() - started
    checks = []
    with psql_connect() as conn:
        for plan in ("api_access", "growth"):
            sub_id = conn.execute("""SELECT s.id FROM subscriptions_subscription s JOIN catalog_planversion v ON v.id = s.plan_version_id
                                     JOIN catalog_plan p ON p.id = v.plan_id WHERE p.code = %s ORDER BY s.id LIMIT 1""",
                                  (plan,)).fetchone()[0]
            got = [i.total for i in Invoice.objects.filter(subscription_id=sub_id)]
            want = expected_total(conn, sub_id, plan)
            checks.append(got == [want])
            if got != [want]:
                print(f"check {plan} subscription {sub_id}: invoices {got}, hand-computed {want}", file=sys.stderr)
    print(json.dumps({"check_detail": None if all(checks) else "see stderr", "wall": wall, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "invoices": run.invoices_created, "errors": run.error_count, "checks_ok": all(checks)}))


def expected_total(conn, sub_id: int, plan: str):
    from decimal import ROUND_HALF_UP, Decimal

    tz = conn.execute("SELECT c.timezone FROM subscriptions_subscription s JOIN customers_customer c ON c.id = s.customer_id "
                      "WHERE s.id = %s", (sub_id,)).fetchone()[0]
    calls, gb = conn.execute("""
        SELECT count(*) FILTER (WHERE m.code = 'api_calls'), coalesce(sum(e.value) FILTER (WHERE m.code = 'storage_gb'), 0)
        FROM usage_event e JOIN catalog_billablemetric m ON m.id = e.metric_id
        WHERE e.subscription_id = %s AND e."timestamp" >= (DATE '2026-10-01')::timestamp AT TIME ZONE %s
          AND e."timestamp" < (DATE '2026-11-01')::timestamp AT TIME ZONE %s""", (sub_id, tz, tz)).fetchone()
    cent = Decimal("0.01")
    if plan == "api_access":
        return max((Decimal(calls) * Decimal("0.004")).quantize(cent, ROUND_HALF_UP), Decimal("200.00"))
    tiered = min(calls, 500) * Decimal("0.01") + max(calls - 500, 0) * Decimal("0.005")
    return Decimal("49.00") + tiered.quantize(cent, ROUND_HALF_UP) + (gb * Decimal("0.10")).quantize(cent, ROUND_HALF_UP)


def reset_billing() -> None:
    with psql_connect() as conn:
        conn.execute("""TRUNCATE invoicing_invoiceline, invoicing_invoice, invoicing_historicalinvoice,
                        invoicing_billingrun, invoicing_invoicenumberseries, invoicing_invoiceemail,
                        common_auditevent, subscriptions_historicalsubscription CASCADE""")
        conn.execute("UPDATE subscriptions_subscription SET usage_billed_through = NULL, advance_billed_through = "
                     "CASE WHEN advance_billed_through IS NOT NULL THEN DATE '2026-11-01' END")


def live_usage(base: str, key: str, n_subs: int, requests: int) -> list[float]:
    import http.client

    host, port = base.removeprefix("http://").split(":")
    latencies = []
    rng = random.Random(7)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    for _ in range(requests):
        sub = f"scale_sub_{rng.randrange(n_subs)}"
        t0 = time.perf_counter()
        conn.request("GET", f"/api/v1/subscriptions/{sub}/usage/", headers={"Authorization": f"Bearer {key}"})
        response = conn.getresponse()
        response.read()
        latencies.append(time.perf_counter() - t0)
        assert response.status == 200, response.status
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", default="1000000,3000000,10000000")
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--batch-threads", type=int, default=4)
    parser.add_argument("--load", choices=["sql", "http"], default="sql",
                        help="how events reach each point: generated in SQL (+ an HTTP sample) or all through HTTP")
    parser.add_argument("--sample", type=int, default=50_000, help="events posted through HTTP at each point (--load sql)")
    parser.add_argument("--live-requests", type=int, default=300)
    parser.add_argument("--png", default="", help="write the growth curve here (matplotlib)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the database (migrated) and its events; continue from the count stored")
    parser.add_argument("--bill-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bill_child:
        bill_child()
        return

    points = [int(p) for p in args.points.split(",")]
    stored = 0
    if args.resume:
        ensure_database()
        reset_billing()
        with psql_connect() as conn:
            stored = conn.execute("SELECT count(*) FROM usage_event").fetchone()[0]
        print(f"resuming with {stored:,} events stored", flush=True)
    else:
        ensure_database(fresh=True)
        seed(args.subscriptions)
    setup_django()
    from customers.services import api_key_create

    _, key = api_key_create(name=f"scale-{uuid.uuid4().hex[:6]}", scopes=["usage:write", "billing:read"])
    span = int((datetime.now(timezone.utc) - timedelta(hours=1) - EVENTS_FROM).total_seconds())
    run = uuid.uuid4().hex[:8]
    rows = []
    with web_server(workers=2) as base:
        # Warm both workers (imports, prepared statements) before anything is timed: 4,000 events.
        warm = make_bodies(args.subscriptions, 0, 4000, span, 1000, run + "w")
        assert set(run_requests(base, key, "/api/v1/events/batch/", warm, 2)[1]) == {200}
        stored += 4000
        for point in points:
            if point < stored:
                continue
            posted, elapsed = 0, 0.0
            load_seconds = 0.0
            if args.load == "sql" and point - args.sample > stored:
                started = time.monotonic()
                load_sql(args.subscriptions, stored, point - args.sample - stored, span, run)
                load_seconds = time.monotonic() - started
                stored = point - args.sample
                print(f"loaded {stored:,} events in SQL (+ keys, rollups rebuilt) in {load_seconds:.0f} s", flush=True)
            while stored < point:  # bodies generated per 100k events, so memory stays flat
                count = min(100_000, point - stored)
                bodies = make_bodies(args.subscriptions, stored, count, span, 1000, run)
                seconds, statuses, _ = run_requests(base, key, "/api/v1/events/batch/", bodies, args.batch_threads)
                assert set(statuses) == {200}, statuses
                stored += count
                posted += count
                elapsed += seconds
            with psql_connect() as conn:
                events = conn.execute("SELECT count(*) FROM usage_event").fetchone()[0]
                rolled = int(conn.execute("SELECT coalesce(sum(event_count), 0) FROM usage_rollup_daily").fetchone()[0])
            lat = live_usage(base, key, args.subscriptions, args.live_requests)
            child = subprocess.run([str(PYTHON), str(Path(__file__).resolve()), "--bill-child"], cwd=ROOT,
                                   env=bench_env(), capture_output=True, text=True)
            if child.returncode:
                raise SystemExit(f"billing child failed:\n{child.stderr[-3000:]}")
            bill = json.loads(child.stdout.strip().splitlines()[-1])
            if not bill["checks_ok"]:
                print(child.stderr[-2000:], flush=True)
            reset_billing()
            row = {"events": events, "load_s": load_seconds, "ingest_eps": posted / elapsed if elapsed else float("nan"), "bill_s": bill["wall"], "rss_mb": bill["rss_mb"],
                   "rollup_lag_events": events - rolled, "live_p50_ms": pct(lat, .5), "live_p99_ms": pct(lat, .99),
                   "invoices": bill["invoices"], "errors": bill["errors"], "checks_ok": bill["checks_ok"]}
            rows.append(row)
            print(f"{events:>12,} events: ingest {row['ingest_eps']:,.0f} events/s (HTTP, last {posted:,}); billing run "
                  f"{row['bill_s']:.1f} s, peak RSS {row['rss_mb']:.0f} MB, {row['invoices']:,} invoices, "
                  f"{row['errors']} errors, totals {'OK' if row['checks_ok'] else 'MISMATCH'}; rollup lag "
                  f"{row['rollup_lag_events']} events; live usage p50 {row['live_p50_ms']:.1f} ms, "
                  f"p99 {row['live_p99_ms']:.1f} ms", flush=True)
    first = rows[0]
    print("\ngrowth against the first point (events ×{}):".format(
        ", ×".join(f"{r['events'] / first['events']:.1f}" for r in rows)))
    for name, label in (("ingest_eps", "ingest events/s"), ("bill_s", "billing run s"), ("rss_mb", "peak RSS MB"),
                        ("live_p99_ms", "live usage p99 ms")):
        print(f"  {label:<20} " + "  ".join(f"{r[name] / first[name]:.2f}" for r in rows))
    print(json.dumps(rows))
    if args.png:
        chart(rows, args.png)


def chart(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["events"] / 1e6 for r in rows]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.2))
    for ax, (key, title) in zip(axes, (("ingest_eps", "ingest (events/s)"), ("bill_s", "billing run (s)"),
                                       ("rss_mb", "billing peak RSS (MB)"), ("live_p99_ms", "live usage p99 (ms)"))):
        ax.plot(x, [r[key] for r in rows], marker="o")
        ax.set_title(title)
        ax.set_xlabel("stored events (millions)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=.3)
    fig.suptitle("Ledgerline at scale: 10,000 subscriptions, 2-core machine")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"chart written to {path}")


if __name__ == "__main__":
    main()
