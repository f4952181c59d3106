"""Revenue forecast for the next months (issue 16): committed MRR carried forward plus a usage
revenue forecast per customer.

- Committed: the ledger's MRR at each forecast month's end: today's MRR carried forward with the
  changes already scheduled (downgrades, seat decreases, cancellations at period end) at their
  effective months; new business and unscheduled churn are not guessed at.
- Usage: each customer's invoiced usage by service month (`selectors.usage_revenue_frame`), a
  monthly series with no weekday effect, zero-filled between its first month and the cut-off.
  With 12 or more months it is fitted with statsmodels' ETS (additive error, additive damped
  trend; additive yearly seasonality from 24 months on); with less it is forecast seasonal-naive
  (the same month a year before when there is one, else the last month). Negative forecasts
  are clipped to zero; a fit that fails falls back to seasonal naive.
- The models work in floats (they are estimates); every figure leaves this module as a Decimal
  quantized to the currency.

`backtest` holds out the last months of history, forecasts them from what came before and reports
the mean absolute percentage error (MAPE) of the monthly usage totals.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import numpy as np

from analytics.mrr import add_months
from analytics.selectors import mrr_bridge, usage_revenue_frame
from common.money import quantize_money

ZERO = Decimal(0)
ETS_MIN_MONTHS = 12
SEASONAL_MIN_MONTHS = 24
SEASON = 12
MAX_MODELED_CUSTOMERS = 200


def seasonal_naive(history: list[float], horizon: int) -> list[float]:
    out = []
    series = list(history)
    for _ in range(horizon):
        value = series[-SEASON] if len(series) >= SEASON else (series[-1] if series else 0.0)
        out.append(value)
        series.append(value)
    return out


def forecast_series(history: list[float], horizon: int) -> tuple[list[float], str]:
    """(forecast, method) for one monthly series."""
    if len(history) < ETS_MIN_MONTHS or not any(history):
        return [max(v, 0.0) for v in seasonal_naive(history, horizon)], "seasonal_naive"
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel  # noqa: PLC0415 — heavy dependency, loaded on first use

    seasonal = len(history) >= SEASONAL_MIN_MONTHS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = ETSModel(np.asarray(history, dtype=float), error="add", trend="add", damped_trend=True,
                             seasonal="add" if seasonal else None, seasonal_periods=SEASON if seasonal else None)
            fitted = model.fit(disp=False, maxiter=200)
            values = [float(v) for v in fitted.forecast(horizon)]
        if not all(np.isfinite(values)):
            raise ValueError("non-finite forecast")
    except Exception:  # noqa: BLE001 - a model that cannot fit this series is replaced, not fatal
        return [max(v, 0.0) for v in seasonal_naive(history, horizon)], "seasonal_naive"
    return [max(v, 0.0) for v in values], "ets_seasonal" if seasonal else "ets"


@dataclass
class UsageForecast:
    totals: list[float]
    methods: dict[str, int]


def _customer_series(*, currency: str, through: date) -> dict[int, list[float]]:
    frame = usage_revenue_frame(currency=currency, end=through, by_customer=True)
    series: dict[int, list[float]] = {}
    for customer_id, group in frame.groupby("customer_id"):
        by_month = {m: float(v) for m, v in zip(group["month"], group["total"])}
        month, values = min(by_month), []
        while month <= through:
            values.append(by_month.get(month, 0.0))
            month = add_months(month, 1)
        series[int(customer_id)] = values
    return series


def usage_forecast(*, currency: str, through: date, horizon: int) -> UsageForecast:
    """Sum of the per-customer forecasts for the `horizon` months after `through`. The
    `MAX_MODELED_CUSTOMERS` largest customers (usage over the last 12 months) get a model each; the
    long tail is summed into one series with one model, so a request stays fast at any size."""
    totals = [0.0] * horizon
    methods: dict[str, int] = {}
    series = sorted(_customer_series(currency=currency, through=through).values(), key=lambda h: -sum(h[-SEASON:]))
    modeled, tail = series[:MAX_MODELED_CUSTOMERS], series[MAX_MODELED_CUSTOMERS:]
    if tail:
        length = max(len(h) for h in tail)
        modeled.append([sum(h[i - length + len(h)] for h in tail if i - length + len(h) >= 0) for i in range(length)])
    for history in modeled:
        values, method = forecast_series(history, horizon)
        methods[method] = methods.get(method, 0) + 1
        totals = [t + v for t, v in zip(totals, values)]
    return UsageForecast(totals=totals, methods=methods)


def _money(value: float, currency: str) -> Decimal:
    return quantize_money(Decimal(repr(round(value, 6))), currency)


def revenue_forecast(*, currency: str, start: date, months: int) -> dict:
    """`months` months from `start`: committed MRR (carried) + usage forecast = total."""
    before = add_months(start, -1)
    bridge = mrr_bridge(currency=currency, start=before, end=add_months(start, months - 1))
    usage = usage_forecast(currency=currency, through=before, horizon=months)
    rows = []
    for value, month in zip(usage.totals, bridge[1:]):
        amount = _money(value, currency)
        rows.append({"month": f"{month.month:%Y-%m}", "committed_mrr": month.mrr, "usage_forecast": amount,
                     "total": month.mrr + amount})
    return {"currency": currency, "from": f"{start:%Y-%m}", "months": months, "committed_mrr": bridge[0].mrr,
            "methods": usage.methods, "results": rows}


def backtest(*, currency: str, through: date, holdout: int = 3) -> dict:
    """Fit on the service months up to `through − holdout`, forecast the `holdout` months up to
    `through`, compare to the invoiced usage: MAPE over the months with actual usage."""
    cutoff = add_months(through, -holdout)
    actual_frame = usage_revenue_frame(currency=currency, end=through)
    actual = {m: float(v) for m, v in zip(actual_frame["month"], actual_frame["total"])}
    forecast = usage_forecast(currency=currency, through=cutoff, horizon=holdout)
    rows, errors = [], []
    for i, predicted in enumerate(forecast.totals):
        month = add_months(cutoff, i + 1)
        real = actual.get(month, 0.0)
        error = abs(real - predicted) / real if real else None
        if error is not None:
            errors.append(error)
        rows.append({"month": f"{month:%Y-%m}", "actual": _money(real, currency), "forecast": _money(predicted, currency),
                     "ape": None if error is None else Decimal(repr(round(error, 4)))})
    mape = Decimal(repr(round(sum(errors) / len(errors), 4))) if errors else None
    return {"currency": currency, "through": f"{through:%Y-%m}", "holdout": holdout, "mape": mape,
            "methods": forecast.methods, "months": rows}
