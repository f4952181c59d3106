from django.urls import path

from analytics.api import ArAgingView, CohortsView, ForecastView, MrrBridgeView, SummaryView, UsageRevenueView

_views = [
    ("mrr", MrrBridgeView), ("summary", SummaryView), ("cohorts", CohortsView), ("usage_revenue", UsageRevenueView),
    ("ar_aging", ArAgingView), ("forecast", ForecastView),
]

urlpatterns = [path(f"analytics/{name}/", view.as_view(), name=f"analytics-{name}") for name, view in _views] + [
    path(f"analytics/{name}.csv", view.as_view(), {"format": "csv"}, name=f"analytics-{name}-csv") for name, view in _views
]
