"""Billing-run benchmark: 10,000 subscriptions, 10 million usage events in one month.

    .venv/bin/python bench/billing_run.py [--subscriptions 10000] [--events 10000000] [--chunk 1000] [--keep]

Works in its own database (ledgerline_bench_billing, recreated unless --keep finds it seeded).
Customers, plans, subscriptions and events are generated with set-based SQL (generate_series)
straight into the tables — events go into the March 2026 partition of `usage_event`, the way
ingestion stores them (idempotency keys are not generated: billing never reads them). Then
`invoicing.billing.billing_run(as_of=2026-04-01)` closes March for every subscription (March
usage in arrears + April's in-advance fee on one invoice) and the script prints wall time, peak
memory (RSS) and counts, checks a few invoices against hand-computed totals, and reruns the same
as_of to show it creates nothing. Target on the 2-core machine (issue 20): ≤ 10 s with rollups (the fanned-out run, --workers) and ≤ 1 GB.

Fan-out over Celery workers (issue 20):

    REDIS_URL=redis://127.0.0.1:6379/15 .venv/bin/python bench/billing_run.py --subscriptions 2000 \
        --events 200000 --chunk 250 --workers 1 2

starts N real `celery worker --pool solo` processes against the bench database and Redis for each
N given, queues the run in its asynchronous form (`billing_run_enqueue`: plan → chunk tasks →
complete), waits for it and prints the wall time per N and the speed-up over the first N. The
invoicing state is reset between the measurements; the run does not finalize (numbering is a
serial step by design). REDIS_URL defaults to db 15 so that no other worker takes the chunks.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

os.environ.setdefault("BENCH_DB", "ledgerline_bench_billing")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import celery_workers, ensure_database, psql_connect, rollups_rebuild, setup_django  # noqa: E402

AS_OF = date(2026, 4, 1)
TIMEZONES = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Tokyo"]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seed(n_subs: int, n_events: int) -> None:
    """Everything set-based: a handful of INSERT … SELECT generate_series statements."""
    t0 = time.monotonic()
    with psql_connect() as conn:
        conn.execute("SELECT usage_event_ensure_partition('2026-03-15T00:00:00Z')")
        conn.execute("""
            INSERT INTO catalog_billablemetric (code, name, description, aggregation, field, allow_negative, created_at,
                                                updated_at)
            VALUES ('api_calls', 'API calls', '', 'count', '', false, now(), now()),
                   ('storage_gb', 'Storage', '', 'sum', 'gb', false, now(), now())
        """)
        conn.execute("""
            INSERT INTO catalog_plan (code, name, description, currency, interval, created_at, updated_at)
            VALUES ('api_access', 'API access', '', 'USD', 'month', now(), now()),
                   ('growth', 'Growth', '', 'USD', 'month', now(), now())
        """)
        conn.execute("""
            INSERT INTO catalog_planversion (plan_id, version, amount, pay_in_advance, trial_days, minimum_commitment,
                                             customer_id, based_on_id, created_at, updated_at)
            SELECT id, 1, CASE code WHEN 'api_access' THEN 0 ELSE 49 END, code = 'growth', 0,
                   CASE code WHEN 'api_access' THEN 200 ELSE NULL END, NULL, NULL, now(), now()
            FROM catalog_plan
        """)
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
            JOIN catalog_billablemetric m ON m.code = c.metric
        """)
        conn.execute("""
            INSERT INTO customers_customer (external_id, name, currency, email, billing_email, timezone, country, region,
                address, tax_id, tax_exempt, collection_method, net_terms_days, invoice_grace_period_days, metadata,
                stripe_customer_id, created_at, updated_at)
            SELECT 'bench_' || g, 'Bench customer ' || g, 'USD', '', '', (%s::text[])[1 + g %% 4], 'US', '', '', '',
                   false, 'send_invoice', 30, 0, '{}'::jsonb, '', now(), now()
            FROM generate_series(1, %s) g
        """, (TIMEZONES, n_subs))
        # Even subscriptions are on API access (in arrears, 200 minimum), odd ones on Growth (49 in
        # advance, March's fee already billed: advance cursor at April 1st).
        conn.execute("""
            INSERT INTO subscriptions_subscription (external_id, customer_id, plan_version_id, quantity, billing_time,
                status, start_date, trial_end_date, end_date, cancel_at_period_end, canceled_at,
                usage_billed_through, advance_billed_through, created_at, updated_at)
            SELECT 'bench_sub_' || substr(c.external_id, 7), c.id, v.id, 1, 'calendar', 'active', DATE '2026-03-01',
                   NULL, NULL, false, NULL, NULL, CASE WHEN p.code = 'growth' THEN DATE '2026-04-01' END, now(), now()
            FROM customers_customer c
            JOIN catalog_plan p ON p.code = CASE WHEN substr(c.external_id, 7)::int % 2 = 0 THEN 'api_access' ELSE 'growth' END
            JOIN catalog_planversion v ON v.plan_id = p.id
        """)
        conn.execute("""
            INSERT INTO subscriptions_subscriptionchange (subscription_id, kind, effective_date, created_at, applied_at,
                to_plan_version_id, to_quantity, from_status, to_status, actor, inputs)
            SELECT id, 'created', start_date, now(), now(), plan_version_id, quantity, '', status, 'bench', '{}'::jsonb
            FROM subscriptions_subscription
        """)
        # Statistics of an empty event store: the run below bills minutes after the load, as at a
        # month-end, with no manual ANALYZE of what was loaded (issue 20). The billing run refreshes
        # the rollup tables' statistics itself when they are stale (usage_statistics_refresh).
        conn.execute("ANALYZE")
        t1 = time.monotonic()
        print(f"seeded {n_subs:,} customers and subscriptions in {t1 - t0:.1f} s")
        # Events: 90% API calls, 10% storage (Growth subscriptions only), spread over March 1 14:00 UTC –
        # March 31 14:00 UTC: inside March in every customer timezone (New York to Tokyo), and every
        # local day of March has usage (an empty last day would be a zero-usage anomaly for every
        # subscription, which the billing run's review check would score and store 10,000 times).
        # One statement per million rows.
        subs = conn.execute("SELECT min(id), max(id) FROM subscriptions_subscription").fetchone()
        metrics = dict(conn.execute("SELECT code, id FROM catalog_billablemetric").fetchall())
        step = 1_000_000
        for offset in range(0, n_events, step):
            count = min(step, n_events - offset)
            conn.execute("""
                INSERT INTO usage_event (transaction_id, customer_id, subscription_id, metric_id, "timestamp",
                                         properties, value, unique_value, received_at, is_late)
                SELECT 'bench-' || g, s.customer_id, s.id,
                       CASE WHEN g %% 10 = 0 AND s.advance_billed_through IS NOT NULL THEN %(gb)s ELSE %(calls)s END,
                       TIMESTAMPTZ '2026-03-01 14:00:00+00' + ((g::bigint * 7919) %% 2592000) * interval '1 second',
                       '{}'::jsonb,
                       CASE WHEN g %% 10 = 0 AND s.advance_billed_through IS NOT NULL THEN (g %% 7) + 0.5 END,
                       NULL, now(), false
                FROM generate_series(%(lo)s, %(hi)s) g
                JOIN subscriptions_subscription s ON s.id = %(first)s + (g %% %(n)s)
            """, {"gb": metrics["storage_gb"], "calls": metrics["api_calls"], "lo": offset + 1, "hi": offset + count,
                  "first": subs[0], "n": subs[1] - subs[0] + 1})
        t2 = time.monotonic()
        print(f"generated {n_events:,} events in {t2 - t1:.1f} s")
        # Generated rows bypass ingestion, which maintains the daily rollups billing reads: rebuild them.
        rollups_rebuild()
        print(f"rollups rebuilt in {time.monotonic() - t2:.1f} s")


def expected_total(conn, sub_id: int) -> Decimal:
    """Hand-computed rules, straight from the event table, for one subscription."""
    from decimal import ROUND_HALF_UP

    plan = conn.execute("""SELECT p.code FROM subscriptions_subscription s JOIN catalog_planversion v ON v.id = s.plan_version_id
                           JOIN catalog_plan p ON p.id = v.plan_id WHERE s.id = %s""", (sub_id,)).fetchone()[0]
    calls, gb = conn.execute("""SELECT count(*) FILTER (WHERE m.code = 'api_calls'), coalesce(sum(e.value) FILTER (WHERE m.code = 'storage_gb'), 0)
                                FROM usage_event e JOIN catalog_billablemetric m ON m.id = e.metric_id
                                WHERE e.subscription_id = %s""", (sub_id,)).fetchone()
    cent = Decimal("0.01")
    if plan == "api_access":
        usage = (Decimal(calls) * Decimal("0.004")).quantize(cent, ROUND_HALF_UP)
        return max(usage, Decimal("200.00"))
    tiered = min(calls, 500) * Decimal("0.01") + max(calls - 500, 0) * Decimal("0.005")
    return Decimal("49.00") + tiered.quantize(cent, ROUND_HALF_UP) + (gb * Decimal("0.10")).quantize(cent, ROUND_HALF_UP)


def reset_invoicing() -> None:
    with psql_connect() as conn:  # undo a previous run: invoices, cursors
        conn.execute("""TRUNCATE invoicing_invoiceline, invoicing_invoice, invoicing_historicalinvoice,
                        invoicing_billingrun, invoicing_billingrunchunk, invoicing_invoicenumberseries,
                        invoicing_invoiceemail, common_auditevent, subscriptions_historicalsubscription CASCADE""")
        conn.execute("UPDATE subscriptions_subscription SET usage_billed_through = NULL, advance_billed_through = "
                     "CASE WHEN advance_billed_through IS NOT NULL THEN DATE '2026-04-01' END")
        # Each reset and each run rewrite all 10,000 subscription rows, and autovacuum is off on this
        # machine: 239k dead rows after a dozen runs. Vacuum them so every measurement starts from the same
        # table (a month-end run rewrites them once, and autovacuum follows).
        conn.execute("VACUUM ANALYZE subscriptions_subscription")


def run_with_workers(n_workers: int, chunk: int, n_subs: int) -> float:
    """Start `n_workers` celery worker processes, queue the run, wait for it; the wall time in s."""
    from billing_site.celery import app
    from invoicing.billing_run import billing_run_enqueue
    from invoicing.models import BillingRun

    reset_invoicing()
    app.control.purge()
    with celery_workers(n_workers):
        started = time.monotonic()
        run = billing_run_enqueue(as_of=AS_OF, auto_finalize=False, chunk_size=chunk, actor="bench")
        while True:
            run = BillingRun.objects.get(pk=run.pk)
            if run.status not in ("queued", "running"):
                break
            if time.monotonic() - started > 600:
                raise RuntimeError("the run did not finish in 10 minutes")
            time.sleep(0.05)
        wall = time.monotonic() - started
    # How much chunk work overlapped: the sum of the chunks' own transaction times over the wall time
    # from the first chunk's start to the last one's end (1.0 = one at a time).
    spans = list(run.chunks.values_list("started_at", "done_at"))
    busy = sum((done - began).total_seconds() for began, done in spans)
    window = (max(d for _, d in spans) - min(b for b, _ in spans)).total_seconds() if spans else 0
    print(f"  {n_workers} worker process(es): {wall:.1f} s — {run.status}, {run.chunks_total} chunks, "
          f"{run.subscriptions_done:,}/{run.subscriptions_due:,} subscriptions, {run.invoices_created:,} invoices, "
          f"{run.error_count} errors; chunks {busy:.1f} s of work in {window:.1f} s (overlap × "
          f"{busy / window if window else 0:.2f}); load average {os.getloadavg()[0]:.1f}")
    assert run.status == "succeeded" and run.invoices_created == n_subs
    return wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--keep", action="store_true", help="reuse a seeded database; only reset invoicing state")
    parser.add_argument("--workers", type=int, nargs="+",
                        help="fan the run out over N celery worker processes (one measurement per N given)")
    args = parser.parse_args()
    if args.workers:
        os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")

    seeded = False
    if args.keep:
        try:
            with psql_connect() as conn:
                seeded = conn.execute("SELECT count(*) FROM subscriptions_subscription").fetchone()[0] == args.subscriptions
        except Exception:  # noqa: BLE001 — no database yet
            seeded = False
    if not seeded:
        ensure_database(fresh=True)
        seed(args.subscriptions, args.events)
    else:
        reset_invoicing()
        print("reusing the seeded bench database")

    setup_django()
    if args.workers:
        print(f"billing run as of {AS_OF} over {args.subscriptions:,} subscriptions, {args.events:,} events, "
              f"chunks of {args.chunk}, fanned out over celery worker processes:")
        walls = {n: run_with_workers(n, args.chunk, args.subscriptions) for n in args.workers}
        first = args.workers[0]
        for n, wall in walls.items():
            print(f"  speed-up {first} → {n} worker(s): × {walls[first] / wall:.2f}")
        return
    from invoicing.billing import billing_run
    from invoicing.models import Invoice, InvoiceLine

    rss_before = rss_mb()
    started = time.monotonic()
    if os.environ.get("BENCH_PROFILE"):  # write a cProfile of the run to this path
        import cProfile
        profiler = cProfile.Profile()
        run = profiler.runcall(billing_run, as_of=AS_OF, auto_finalize=False, chunk_size=args.chunk, actor="bench")
        profiler.dump_stats(os.environ["BENCH_PROFILE"])
    else:
        run = billing_run(as_of=AS_OF, auto_finalize=False, chunk_size=args.chunk, actor="bench")
    wall = time.monotonic() - started
    peak = rss_mb()
    print(f"billing run as of {AS_OF}: {run.invoices_created:,} invoices, {run.lines_created:,} lines, "
          f"{run.invoices_flagged} flagged, {run.error_count} errors ({run.status})")
    print(f"wall time {wall:.1f} s; peak RSS {peak:.0f} MB (before the run {rss_before:.0f} MB)")
    print(f"targets: wall <= 10 s (issue 20; --workers 2 fans out): {'OK' if wall <= 10 else 'MISSED'}; "
          f"memory <= 1024 MB: {'OK' if peak <= 1024 else 'MISSED'}")

    with psql_connect() as conn:
        ids = [row[0] for row in conn.execute(
            "(SELECT id FROM subscriptions_subscription WHERE advance_billed_through IS NULL ORDER BY id LIMIT 2) UNION ALL "
            "(SELECT id FROM subscriptions_subscription WHERE advance_billed_through IS NOT NULL ORDER BY id LIMIT 2)").fetchall()]
        for sub_id in ids:
            invoice = Invoice.objects.get(subscription_id=sub_id)
            want = expected_total(conn, sub_id)
            status = "OK" if invoice.total == want else "MISMATCH"
            print(f"  check subscription {sub_id}: invoice total {invoice.total:.2f}, hand-computed {want} → {status}")
    assert Invoice.objects.count() == run.invoices_created == args.subscriptions
    assert InvoiceLine.objects.count() == run.lines_created

    started = time.monotonic()
    again = billing_run(as_of=AS_OF, auto_finalize=False, chunk_size=args.chunk, actor="bench")
    print(f"rerun of the same as_of: {again.invoices_created} invoices created in {time.monotonic() - started:.1f} s")

    from invoicing.services import invoices_auto_finalize

    started = time.monotonic()
    swept = invoices_auto_finalize(today=AS_OF)
    print(f"auto-finalize sweep: {swept.finalized:,} finalized, {swept.waiting_review} waiting for review "
          f"in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
