from django.urls import path

from backoffice.views import analytics, auth, dunning, intel, invoices, operations, pages, payments, revenue
from common.throttle import login_throttled

app_name = "backoffice"

urlpatterns = [
    path("", pages.dashboard, name="dashboard"),
    path("login/", login_throttled(auth.LoginView.as_view()), name="login"),
    path("logout/", auth.LogoutView.as_view(), name="logout"),
    path("search/", pages.search, name="search"),
    path("customers/", pages.customers, name="customers"),
    path("customers/<str:external_id>/", pages.customer, name="customer"),
    path("invoices/", invoices.invoices, name="invoices"),
    path("invoices/export.csv", invoices.invoices_csv, name="invoices_csv"),
    path("invoices/<uuid:pk>/", invoices.invoice, name="invoice"),
    path("invoices/<uuid:pk>/pdf/", invoices.invoice_pdf, name="invoice_pdf"),
    path("invoices/<uuid:pk>/approve/", invoices.invoice_approve_view, name="invoice_approve"),
    path("invoices/<uuid:pk>/finalize/", invoices.invoice_finalize_view, name="invoice_finalize"),
    path("invoices/<uuid:pk>/void/", invoices.invoice_void_view, name="invoice_void"),
    path("invoices/<uuid:pk>/pay/", payments.invoice_pay_view, name="invoice_pay"),
    path("invoices/<uuid:pk>/charge/", payments.invoice_charge_view, name="invoice_charge"),
    path("invoices/<uuid:pk>/credit/", invoices.invoice_credit_view, name="invoice_credit"),
    path("invoices/<uuid:pk>/uncollectible/", invoices.invoice_uncollectible_view, name="invoice_uncollectible"),
    path("invoices/<uuid:pk>/resend/", invoices.invoice_resend_view, name="invoice_resend"),
    path("review/", operations.review_queue, name="review"),
    path("billing-runs/", operations.billing_runs, name="billing_runs"),
    path("billing-runs/start/", operations.billing_run_start, name="billing_run_start"),
    path("billing-runs/<int:pk>/", operations.billing_run_detail, name="billing_run"),
    path("dead-letters/", operations.dead_letters, name="dead_letters"),
    path("dead-letters/<int:pk>/replay/", operations.dead_letter_replay_view, name="dead_letter_replay"),
    path("analytics/", analytics.analytics_page, name="analytics"),
    path("analytics/<str:name>.csv", analytics.analytics_csv, name="analytics_csv"),
    path("payments/", payments.payments, name="payments"),
    path("payments/export.csv", payments.payments_csv, name="payments_csv"),
    path("payments/<uuid:pk>/", payments.payment, name="payment"),
    path("dunning/", dunning.dunning_cases, name="dunning"),
    path("dunning/<int:pk>/", dunning.dunning_case, name="dunning_case"),
    path("dunning/<int:pk>/retry/", dunning.dunning_retry_view, name="dunning_retry"),
    path("anomalies/", intel.anomalies, name="anomalies"),
    path("anomalies/<int:pk>/dismiss/", intel.anomaly_dismiss_view, name="anomaly_dismiss"),
    path("anomalies/<int:pk>/confirm/", intel.anomaly_confirm_view, name="anomaly_confirm"),
    path("revenue/", revenue.revenue, name="revenue"),
    path("revenue/journal/", revenue.journal, name="revenue_journal"),
    path("revenue/close/", revenue.revenue_close, name="revenue_close"),
    path("revenue/<str:name>.csv", revenue.revenue_csv, name="revenue_csv"),
]
