from django.urls import path

from analytics.api import ArAgingView, CohortsView, ForecastView, MrrBridgeView, SummaryView, UsageRevenueView
from analytics.api_intel import (
    AnomalyConfirmView,
    AnomalyDetailView,
    AnomalyDismissView,
    AnomalyListView,
    SimulationView,
    SubscriptionAlertsView,
)

_views = [
    ("mrr", MrrBridgeView), ("summary", SummaryView), ("cohorts", CohortsView), ("usage_revenue", UsageRevenueView),
    ("ar_aging", ArAgingView), ("forecast", ForecastView),
]

urlpatterns = [path(f"analytics/{name}/", view.as_view(), name=f"analytics-{name}") for name, view in _views] + [
    path(f"analytics/{name}.csv", view.as_view(), {"format": "csv"}, name=f"analytics-{name}-csv") for name, view in _views
] + [
    path("anomalies/", AnomalyListView.as_view(), name="anomaly-list"),
    path("anomalies/<str:pk>/", AnomalyDetailView.as_view(), name="anomaly-detail"),
    path("anomalies/<str:pk>/dismiss/", AnomalyDismissView.as_view(), name="anomaly-dismiss"),
    path("anomalies/<str:pk>/confirm/", AnomalyConfirmView.as_view(), name="anomaly-confirm"),
    path("simulations/", SimulationView.as_view(), name="simulations"),
    path("subscriptions/<str:external_id>/alerts/", SubscriptionAlertsView.as_view(), name="subscription-alerts"),
]
