"""The revenue forecast: model choice by history length, seasonal naive, ETS on a clean trend,
committed MRR carried forward, the API and the back-test command."""

import math
from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command

from analytics.forecast import forecast_series, seasonal_naive
from tests.analytics.test_analytics_api import invoice
from tests.analytics.test_mrr_scenario import run_scenario
from tests.customers.factories import CustomerFactory

D = date


def test_seasonal_naive_repeats_last_year_or_the_last_month():
    history = [float(m) for m in range(1, 13)]  # Jan..Dec = 1..12
    assert seasonal_naive(history, 3) == [1.0, 2.0, 3.0]
    assert seasonal_naive([5.0, 7.0], 2) == [7.0, 7.0]
    assert forecast_series([5.0, 7.0], 2) == ([7.0, 7.0], "seasonal_naive")
    assert forecast_series([], 2) == ([0.0, 0.0], "seasonal_naive")


def test_ets_follows_a_trend_and_seasonality():
    trend = [100.0 + 10 * i for i in range(18)]
    values, method = forecast_series(trend, 3)
    assert method == "ets"
    assert all(abs(v - e) / e < 0.05 for v, e in zip(values, [280.0, 290.0, 300.0]))
    seasonal = [1000 + 200 * math.sin(2 * math.pi * i / 12) + 5 * i for i in range(36)]
    values, method = forecast_series(seasonal, 12)
    assert method == "ets_seasonal"
    expected = [1000 + 200 * math.sin(2 * math.pi * i / 12) + 5 * i for i in range(36, 48)]
    assert sum(abs(v - e) / e for v, e in zip(values, expected)) / 12 < 0.05
    assert min(forecast_series([50.0 - 5 * i for i in range(14)], 12)[0]) >= 0  # clipped at zero


@pytest.mark.django_db
def test_forecast_api_carries_committed_mrr_and_adds_usage(reader_api, capsys):
    run_scenario()  # USD MRR at the end of August 2026: 300.00
    customer = CustomerFactory(external_id="metered")
    for month in range(1, 9):
        invoice(customer, total="0", due=D(2026, month, 28), lines=[("usage", "40.00", D(2026, month, 1))])
    body = reader_api.get("/api/v1/analytics/forecast/?from=2026-09&months=3&currency=USD").json()
    assert body["committed_mrr"] == "300.00" and body["methods"] == {"seasonal_naive": 1}
    assert [(r["month"], r["committed_mrr"], r["usage_forecast"], r["total"]) for r in body["results"]] == [
        ("2026-09", "300.00", "40.00", "340.00"), ("2026-10", "300.00", "40.00", "340.00"),
        ("2026-11", "300.00", "40.00", "340.00")]
    csv_text = reader_api.get("/api/v1/analytics/forecast.csv?from=2026-09&months=3&currency=USD").content.decode()
    assert csv_text.splitlines()[0] == "month,committed_mrr,usage_forecast,total"
    call_command("analytics_forecast", "--currency", "USD", "--from", "2026-09", "--months", "2", "--backtest")
    out = capsys.readouterr().out
    assert "MAPE 0" in out  # a flat 40.00 a month is forecast exactly


@pytest.mark.django_db
def test_committed_mrr_includes_what_is_already_scheduled():
    from subscriptions.services import subscription_cancel, subscription_create
    from tests.catalog.factories import PlanVersionFactory

    PlanVersionFactory(plan__code="m", amount=Decimal("80"))
    customer = CustomerFactory()
    sub = subscription_create(external_id="s", customer=customer, plan_code="m", start_date=D(2026, 1, 1), today=D(2026, 1, 1))
    subscription_cancel(subscription=sub, on=D(2026, 2, 10), today=D(2026, 2, 10))  # ends March 1st
    from analytics.forecast import revenue_forecast

    rows = revenue_forecast(currency="USD", start=D(2026, 2, 1), months=3)["results"]
    assert [(r["month"], r["committed_mrr"]) for r in rows] == [
        ("2026-02", Decimal("80.00")), ("2026-03", Decimal("0.00")), ("2026-04", Decimal("0.00"))]


@pytest.mark.django_db
def test_long_tail_customers_share_one_model(monkeypatch):
    import analytics.forecast as forecast

    monkeypatch.setattr(forecast, "MAX_MODELED_CUSTOMERS", 1)
    big, small_a, small_b = (CustomerFactory(external_id=x) for x in ("big", "small_a", "small_b"))
    for month in range(1, 4):
        invoice(big, total="0", due=D(2026, month, 28), lines=[("usage", "100.00", D(2026, month, 1))])
        invoice(small_a, total="0", due=D(2026, month, 28), lines=[("usage", "10.00", D(2026, month, 1))])
    invoice(small_b, total="0", due=D(2026, 3, 28), lines=[("usage", "5.00", D(2026, 3, 1))])
    result = forecast.usage_forecast(currency="USD", through=D(2026, 3, 1), horizon=2)
    assert result.methods == {"seasonal_naive": 2}  # "big" alone, the two small ones as one series
    assert result.totals == [115.0, 115.0]
