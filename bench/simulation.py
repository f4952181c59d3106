"""Pricing simulation benchmark: 1,000 subscriptions × 6 billed months re-rated with the real engine.

    .venv/bin/python bench/simulation.py [--subscriptions 1000] [--events-per-month 100] [--keep]

Works in its own database (ledgerline_bench_simulation, recreated unless --keep finds it seeded).
Seeds customers, two plans (API access: 0.004 per call, 200 minimum, in arrears; Growth: 49 in
advance, graduated calls + storage), subscriptions from 2026-01-01 and their usage for January to
June with set-based SQL, then bills the six months with `invoicing.billing.billing_run` (timed, not
part of the target). The timed part is `analytics.simulation.simulate` over every subscription and
the six months: once with each subscription's own plan (the self-check: the delta must be 0.00) and
once with a candidate inline plan. Target: < 10 s each.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("BENCH_DB", "ledgerline_bench_simulation")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ensure_database, psql_connect, rollups_rebuild, setup_django  # noqa: E402

START, END = date(2026, 1, 1), date(2026, 7, 1)


def seed(n_subs: int, per_month: int) -> None:
    t0 = time.monotonic()
    with psql_connect() as conn:
        for month in range(1, 8):
            conn.execute("SELECT usage_event_ensure_partition(%s)", (f"2026-{month:02d}-15T00:00:00Z",))
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
                   CASE code WHEN 'api_access' THEN 0.30 ELSE NULL END, NULL, NULL, now(), now()
            FROM catalog_plan""")
        conn.execute("""
            INSERT INTO catalog_charge (plan_version_id, billable_metric_id, model, properties, position,
                                        invoice_display_name, created_at, updated_at)
            SELECT v.id, m.id, c.model, c.props::jsonb, c.pos, '', now(), now()
            FROM (VALUES ('api_access', 'api_calls', 'standard', '{"unit_amount": "0.004"}', 0),
                         ('growth', 'api_calls', 'graduated',
                          '{"tiers": [{"up_to": 50, "unit_amount": "0.01", "flat_amount": "0"},
                                      {"up_to": null, "unit_amount": "0.005", "flat_amount": "0"}]}', 0),
                         ('growth', 'storage_gb', 'standard', '{"unit_amount": "0.10"}', 1)) AS c(plan, metric, model, props, pos)
            JOIN catalog_plan p ON p.code = c.plan JOIN catalog_planversion v ON v.plan_id = p.id
            JOIN catalog_billablemetric m ON m.code = c.metric""")
        conn.execute("""
            INSERT INTO customers_customer (external_id, name, currency, email, billing_email, timezone, country, region,
                address, tax_id, tax_exempt, collection_method, net_terms_days, invoice_grace_period_days, metadata,
                stripe_customer_id, created_at, updated_at)
            SELECT 'sim_' || g, 'Sim customer ' || g, 'USD', '', '', 'UTC', 'US', '', '', '', false, 'send_invoice', 30, 0,
                   '{}'::jsonb, '', now(), now()
            FROM generate_series(1, %s) g""", (n_subs,))
        conn.execute("""
            INSERT INTO subscriptions_subscription (external_id, customer_id, plan_version_id, quantity, billing_time,
                status, start_date, trial_end_date, end_date, cancel_at_period_end, canceled_at,
                usage_billed_through, advance_billed_through, created_at, updated_at)
            SELECT 'sim_sub_' || substr(c.external_id, 5), c.id, v.id, 1, 'calendar', 'active', DATE '2026-01-01',
                   NULL, NULL, false, NULL, NULL, NULL, now(), now()
            FROM customers_customer c
            JOIN catalog_plan p ON p.code = CASE WHEN substr(c.external_id, 5)::int % 2 = 0 THEN 'api_access' ELSE 'growth' END
            JOIN catalog_planversion v ON v.plan_id = p.id""")
        conn.execute("""
            INSERT INTO subscriptions_subscriptionchange (subscription_id, kind, effective_date, created_at, applied_at,
                to_plan_version_id, to_quantity, from_status, to_status, actor, inputs)
            SELECT id, 'created', start_date, now(), now(), plan_version_id, quantity, '', status, 'bench', '{}'::jsonb
            FROM subscriptions_subscription""")
        subs = conn.execute("SELECT min(id), max(id) FROM subscriptions_subscription").fetchone()
        metrics = dict(conn.execute("SELECT code, id FROM catalog_billablemetric").fetchall())
        n_events = n_subs * per_month * 6
        conn.execute("""
            INSERT INTO usage_event (transaction_id, customer_id, subscription_id, metric_id, "timestamp",
                                     properties, value, unique_value, received_at, is_late)
            SELECT 'sim-' || g, s.customer_id, s.id,
                   CASE WHEN g %% 10 = 0 AND p.code = 'growth' THEN %(gb)s ELSE %(calls)s END,
                   TIMESTAMPTZ '2026-01-01 00:00:00+00' + ((g::bigint * 7919) %% 15638400) * interval '1 second',
                   jsonb_build_object('team', 't' || (g %% 3)),
                   CASE WHEN g %% 10 = 0 AND p.code = 'growth' THEN (g %% 7) + 0.5 END, NULL, now(), false
            FROM generate_series(1, %(n)s) g
            JOIN subscriptions_subscription s ON s.id = %(first)s + (g %% %(subs)s)
            JOIN catalog_planversion v ON v.id = s.plan_version_id JOIN catalog_plan p ON p.id = v.plan_id""",
                     {"gb": metrics["storage_gb"], "calls": metrics["api_calls"], "n": n_events, "first": subs[0],
                      "subs": subs[1] - subs[0] + 1})
        # Generated rows bypass ingestion, which maintains the daily rollups billing reads: rebuild them.
        rollups_rebuild()
        conn.execute("VACUUM ANALYZE usage_event")
        conn.execute("ANALYZE")
    print(f"seeded {n_subs:,} subscriptions and {n_events:,} events (Jan–Jun 2026) in {time.monotonic() - t0:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscriptions", type=int, default=1000)
    parser.add_argument("--events-per-month", type=int, default=100)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    ensure_database(fresh=not args.keep)
    setup_django()
    from invoicing.models import Invoice
    from subscriptions.models import Subscription

    if not Invoice.objects.exists():
        if not Subscription.objects.exists():
            seed(args.subscriptions, args.events_per_month)
        from invoicing.billing import billing_run

        t0 = time.monotonic()
        for month in range(2, 8):  # one run per month, as the hourly beat would
            billing_run(as_of=date(2026, month, 1), auto_finalize=False)
        print(f"billed 6 months: {Invoice.objects.count():,} invoices in {time.monotonic() - t0:.1f} s (not timed)")

    from analytics.simulation import candidate_from_definition, simulate

    ids = list(Subscription.objects.values_list("pk", flat=True))
    t0 = time.monotonic()
    own = simulate(candidate=None, subscription_ids=ids, start=START, end=END)
    t_self = time.monotonic() - t0
    mismatches = [r for r in own["rows"] if r["delta"] != "0.00"]
    print(f"self-check: {len(own['rows']):,} subscriptions × 6 months re-rated in {t_self:.2f} s; "
          f"billed {own['totals']['actual']} = simulated {own['totals']['simulated']}; "
          f"{len(mismatches)} mismatching subscription(s)")
    candidate = candidate_from_definition({"currency": "USD", "amount": "19", "minimum_commitment": "25.00", "charges": [
        {"billable_metric": "api_calls", "model": "volume", "properties": {"tiers": [
            {"up_to": 80, "unit_amount": "0.006"}, {"up_to": None, "unit_amount": "0.003"}]}},
        {"billable_metric": "storage_gb", "model": "standard", "properties": {"unit_amount": "0.08"}}]})
    t0 = time.monotonic()
    result = simulate(candidate=candidate, subscription_ids=ids, start=START, end=END)
    t_cand = time.monotonic() - t0
    print(f"candidate plan: {len(result['rows']):,} subscriptions in {t_cand:.2f} s; actual {result['totals']['actual']}, "
          f"simulated {result['totals']['simulated']}, delta {result['totals']['delta']}")
    print(f"target < 10 s: {'met' if max(t_self, t_cand) < 10 else 'MISSED'}")
    if mismatches:
        print("SELF-CHECK FAILED:", mismatches[:3])
        sys.exit(1)


if __name__ == "__main__":
    main()
