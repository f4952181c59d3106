from django.urls import path

from revrec import api

urlpatterns = [
    path("revenue/schedules/", api.SchedulesView.as_view(), name="revenue-schedules"),
    path("revenue/journal/", api.JournalView.as_view(), name="revenue-journal"),
    path("revenue/journal.csv", api.JournalCsvView.as_view(), name="revenue-journal-csv"),
    path("revenue/waterfall/", api.WaterfallView.as_view(), name="revenue-waterfall"),
    path("revenue/waterfall.csv", api.WaterfallCsvView.as_view(), name="revenue-waterfall-csv"),
    path("revenue/rollforward/", api.RollforwardView.as_view(), name="revenue-rollforward"),
    path("revenue/rollforward.csv", api.RollforwardCsvView.as_view(), name="revenue-rollforward-csv"),
    path("revenue/reconciliation/", api.ReconciliationView.as_view(), name="revenue-reconciliation"),
    path("revenue/reconciliation.csv", api.ReconciliationCsvView.as_view(), name="revenue-reconciliation-csv"),
    path("revenue/trial_balance/", api.TrialBalanceView.as_view(), name="revenue-trial-balance"),
    path("revenue/trial_balance.csv", api.TrialBalanceCsvView.as_view(), name="revenue-trial-balance-csv"),
    path("revenue/forecast/", api.ForecastView.as_view(), name="revenue-forecast"),
    path("revenue/forecast.csv", api.ForecastCsvView.as_view(), name="revenue-forecast-csv"),
]
