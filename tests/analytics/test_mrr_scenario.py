"""The hand-computed MRR scenario of issue 16: every movement kind, written live by the subscription
and coupon services through common.hooks, equal to what `analytics_rebuild` writes from history.

USD, calendar billing, 2026 (months named by their first day):
- A: Jan 10 basic ($50/seat/month) × 2 → 100 (new, Jan); Feb 15 upgrade to pro ($120) → 240
  (expansion 140, Feb); Mar 10 downgrade to basic at period end → applied Apr 1 → 100 (contraction
  140, Apr: "a change effective on the 1st belongs to that new month"); May 20 cancel at period
  end → Jun 1 (churn 100, Jun); Aug 5 re-subscribes basic × 1 → 50 (reactivation, Aug).
- B: Mar 1 yearly plan $1,200 → 100 (new, Mar); Apr 3 a forever 10% coupon → 1,080 / 12 = 90
  (contraction 10, Apr).
- C: Mar 25 team ($30) with a 14-day trial: nothing while trialing; active Apr 8 → 30 (new, Apr).
- D: May 1 weekly plan $10 × 3 seats → 30 × 52 / 12 = 130.00 (new, May).
- E: a trial canceled before it ends: never any MRR.
- F (EUR): Feb 1 quarterly plan €300 → 100 EUR (new, Feb), in its own bridge.
"""

from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command

from analytics.models import MrrMovement
from analytics.selectors import analytics_summary, mrr_bridge, rate_str
from catalog.services import coupon_create
from invoicing.coupons import coupon_apply
from subscriptions.services import (
    subscription_activate_trials,
    subscription_apply_pending_changes,
    subscription_cancel,
    subscription_change_plan,
    subscription_create,
)
from tests.catalog.factories import PlanVersionFactory
from tests.customers.factories import CustomerFactory

pytestmark = pytest.mark.django_db
D = date


def plan(code, amount, interval="month", currency="USD", **kw):
    return PlanVersionFactory(plan__code=code, plan__currency=currency, plan__interval=interval, amount=Decimal(amount), **kw)


def run_scenario():
    plan("basic", "50")
    plan("pro", "120")
    plan("annual", "1200", interval="year")
    plan("team", "30", trial_days=14)
    plan("weekly", "10", interval="week")
    plan("quarterly", "300", interval="quarter", currency="EUR")
    a, b, c, d, e = (CustomerFactory(external_id=f"cus_{x}") for x in "abcde")
    f = CustomerFactory(external_id="cus_f", currency="EUR")

    a1 = subscription_create(external_id="a1", customer=a, plan_code="basic", quantity=2, start_date=D(2026, 1, 10),
                             today=D(2026, 1, 10))
    subscription_create(external_id="f1", customer=f, plan_code="quarterly", start_date=D(2026, 2, 1), today=D(2026, 2, 1))
    subscription_change_plan(subscription=a1, plan_code="pro", on=D(2026, 2, 15), today=D(2026, 2, 15))
    subscription_create(external_id="b1", customer=b, plan_code="annual", start_date=D(2026, 3, 1), today=D(2026, 3, 1))
    subscription_change_plan(subscription=a1, plan_code="basic", on=D(2026, 3, 10), today=D(2026, 3, 10))  # period end
    subscription_create(external_id="c1", customer=c, plan_code="team", start_date=D(2026, 3, 25), today=D(2026, 3, 25))
    e1 = subscription_create(external_id="e1", customer=e, plan_code="team", start_date=D(2026, 3, 26), today=D(2026, 3, 26))
    subscription_cancel(subscription=e1, at="immediately", on=D(2026, 3, 30), today=D(2026, 3, 30))
    subscription_apply_pending_changes(subscription=a1, on=D(2026, 4, 1))
    coupon = coupon_create(code="TEN", name="Ten percent", kind="percent", percent_off=Decimal("10"), duration="forever")
    coupon_apply(coupon=coupon, customer=b, on=D(2026, 4, 3))
    assert subscription_activate_trials(today=D(2026, 4, 8)) == 1
    subscription_create(external_id="d1", customer=d, plan_code="weekly", quantity=3, start_date=D(2026, 5, 1),
                        today=D(2026, 5, 1))
    subscription_cancel(subscription=a1, on=D(2026, 5, 20), today=D(2026, 5, 20))  # at period end: Jun 1
    subscription_apply_pending_changes(subscription=a1, on=D(2026, 6, 1))
    subscription_create(external_id="a2", customer=a, plan_code="basic", start_date=D(2026, 8, 5), today=D(2026, 8, 5))


def bridge_table(currency="USD", start=D(2026, 1, 1), end=D(2026, 8, 1)):
    return [(f"{r.month:%Y-%m}", str(r.mrr), str(r.new), str(r.expansion), str(r.contraction), str(r.churn),
             str(r.reactivation), r.customers) for r in mrr_bridge(currency=currency, start=start, end=end)]


EXPECTED_USD = [
    # month     mrr       new       expansion  contraction  churn     reactivation customers
    ("2026-01", "100.00", "100.00", "0.00", "0.00", "0.00", "0.00", 1),
    ("2026-02", "240.00", "0.00", "140.00", "0.00", "0.00", "0.00", 1),
    ("2026-03", "340.00", "100.00", "0.00", "0.00", "0.00", "0.00", 2),
    ("2026-04", "220.00", "30.00", "0.00", "150.00", "0.00", "0.00", 3),
    ("2026-05", "350.00", "130.00", "0.00", "0.00", "0.00", "0.00", 4),
    ("2026-06", "250.00", "0.00", "0.00", "0.00", "100.00", "0.00", 3),
    ("2026-07", "250.00", "0.00", "0.00", "0.00", "0.00", "0.00", 3),
    ("2026-08", "300.00", "0.00", "0.00", "0.00", "0.00", "50.00", 4),
]


def ledger_rows():
    return sorted((r.customer.external_id, r.currency, f"{r.month:%Y-%m}", r.kind, r.amount, r.mrr_before, r.mrr_after)
                  for r in MrrMovement.objects.select_related("customer"))


def test_live_ledger_gives_the_hand_computed_bridge():
    run_scenario()
    assert bridge_table() == EXPECTED_USD
    assert bridge_table("EUR", end=D(2026, 3, 1)) == [
        ("2026-01", "0.00", "0.00", "0.00", "0.00", "0.00", "0.00", 0),
        ("2026-02", "100.00", "100.00", "0.00", "0.00", "0.00", "0.00", 1),
        ("2026-03", "100.00", "0.00", "0.00", "0.00", "0.00", "0.00", 1),
    ]
    kinds = {(c, m, k) for c, _, m, k, *_ in ledger_rows()}
    assert kinds == {("cus_a", "2026-01", "new"), ("cus_a", "2026-02", "expansion"), ("cus_a", "2026-04", "contraction"),
                     ("cus_a", "2026-06", "churn"), ("cus_a", "2026-08", "reactivation"), ("cus_b", "2026-03", "new"),
                     ("cus_b", "2026-04", "contraction"), ("cus_c", "2026-04", "new"), ("cus_d", "2026-05", "new"),
                     ("cus_f", "2026-02", "new")}


def test_bridge_identity_holds_exactly_every_month():
    run_scenario()
    rows = mrr_bridge(currency="USD", start=D(2025, 12, 1), end=D(2026, 12, 1))
    for previous, row in zip(rows, rows[1:]):
        assert row.mrr_start == previous.mrr
        assert row.mrr == row.mrr_start + row.new + row.reactivation + row.expansion - row.contraction - row.churn


def test_rebuild_from_history_equals_the_live_ledger():
    run_scenario()
    live = ledger_rows()
    MrrMovement.objects.all().delete()
    call_command("analytics_rebuild")
    assert ledger_rows() == live
    # A corrupted row is put right by the rebuild, and a rerun changes nothing.
    MrrMovement.objects.filter(customer__external_id="cus_b", month=D(2026, 4, 1)).update(amount=Decimal("11"))
    call_command("analytics_rebuild")
    assert ledger_rows() == live
    assert bridge_table() == EXPECTED_USD


def test_summary_rates_month_to_month():
    run_scenario()
    april = analytics_summary(currency="USD", month=D(2026, 4, 1))
    # start 340; contraction 150 (A 140, B 10); new 30 (C); no churned logo among 2 starting customers.
    assert (april["mrr"], april["arr"], april["customers"], april["arpa"]) == (
        Decimal("220.00"), Decimal("2640.00"), 3, Decimal("73.33"))
    assert [rate_str(april[k]) for k in ("logo_churn_rate", "revenue_churn_rate", "nrr", "grr")] == [
        "0.00", "0.4412", "0.5588", "0.5588"]
    june = analytics_summary(currency="USD", month=D(2026, 6, 1))
    # start 350, 4 customers; A churns 100: logo 1/4, revenue 100/350 = 0.2857, NRR = GRR = 250/350.
    assert [rate_str(june[k]) for k in ("logo_churn_rate", "revenue_churn_rate", "nrr", "grr")] == [
        "0.25", "0.2857", "0.7143", "0.7143"]
    assert june["arpa"] == Decimal("83.33")  # 250 / 3
    assert june["ltv"] == Decimal("291.67")  # 83.33 / 0.2857 = 291.669…


def test_trailing_twelve_month_retention():
    run_scenario()
    # End of April 2026: A 100, B 90, C 30 = 220 (D only arrives in May). End of April 2027: A 50
    # (its second subscription), B 90, C 30 = 170: NRR = GRR = 170 / 220 = 0.7727.
    later = analytics_summary(currency="USD", month=D(2027, 4, 1))
    assert (rate_str(later["nrr_12m"]), rate_str(later["grr_12m"])) == ("0.7727", "0.7727")
    # End of February 2026: A alone at 240; a year later 50: NRR = GRR = 0.2083 (expansion capped for GRR).
    feb = analytics_summary(currency="USD", month=D(2027, 2, 1))
    assert (rate_str(feb["nrr_12m"]), rate_str(feb["grr_12m"])) == ("0.2083", "0.2083")
    assert analytics_summary(currency="USD", month=D(2026, 6, 1))["nrr_12m"] is None  # nobody paid in June 2025
