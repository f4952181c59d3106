"""The demo data set gives the analytics 16 months of history with every movement kind, filled live
through the services; the rebuild agrees; AR aging ties; the forecast back-test runs on it."""

import time
from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command

from analytics.forecast import backtest, revenue_forecast
from analytics.models import MrrMovement
from analytics.selectors import ar_aging, mrr_bridge
from demo.data import seed_demo
from invoicing.models import Invoice

pytestmark = pytest.mark.django_db
D = date


def test_demo_history_has_every_movement_and_rebuilds_identically(capsys):
    started = time.perf_counter()
    summary = seed_demo(today=D(2026, 10, 15))
    seconds = time.perf_counter() - started
    assert summary["analytics demo customers"] == 16 and summary["analytics invoices"] > 0
    kinds = {(c, k) for c, k in MrrMovement.objects.values_list("currency", "kind")}
    assert {k for c, k in kinds if c == "USD"} == {"new", "expansion", "contraction", "churn", "reactivation"}
    assert {k for c, k in kinds if c == "EUR"} >= {"new", "expansion", "churn"}
    bridge = mrr_bridge(currency="USD", start=D(2025, 6, 1), end=D(2026, 10, 1))
    assert len([b for b in bridge if b.mrr > 0]) >= 12
    for row in bridge:
        assert row.mrr == row.mrr_start + row.new + row.reactivation + row.expansion - row.contraction - row.churn
    # Fjord canceled inside its trial: never any MRR.
    assert not MrrMovement.objects.filter(customer__external_id="an_fjord").exists()
    # Delta's yearly plan with the forever 15% coupon: 2,400 × 0.85 / 12 = 170.00.
    assert MrrMovement.objects.get(customer__external_id="an_delta").mrr_after == Decimal("170.00")

    live = sorted(MrrMovement.objects.values_list("customer_id", "currency", "month", "kind", "amount", "mrr_after"))
    MrrMovement.objects.all().delete()
    call_command("analytics_rebuild")
    assert sorted(MrrMovement.objects.values_list("customer_id", "currency", "month", "kind", "amount", "mrr_after")) == live

    aging = ar_aging(currency="USD", as_of=D(2026, 10, 15))
    open_due = sum(i.amount_due for i in Invoice.objects.filter(currency="USD", status="finalized",
                                                                issue_date__lte=D(2026, 10, 15)))
    assert aging["total"] == open_due > 0
    assert sum(aging["buckets"].values()) == aging["total"] and aging["uncollectible"] > 0

    result = backtest(currency="USD", through=D(2026, 9, 1), holdout=3)
    assert result["mape"] is not None and result["methods"].get("ets", 0) + result["methods"].get("ets_seasonal", 0) > 0
    forecast = revenue_forecast(currency="USD", start=D(2026, 11, 1), months=6)
    assert len(forecast["results"]) == 6
    assert all(r["total"] == r["committed_mrr"] + r["usage_forecast"] for r in forecast["results"])
    with capsys.disabled():
        print(f"\nseed_demo: {seconds:.1f}s; back-test MAPE {result['mape']} ({result['methods']})")
