from django.urls import path
from rest_framework.routers import SimpleRouter

from invoicing.api import BillingRunViewSet, InvoiceViewSet
from invoicing.api_coupons import CustomerCouponsView
from invoicing.api_credit_notes import CreditNoteViewSet, InvoiceCreditNotesView

router = SimpleRouter()
router.register("invoices", InvoiceViewSet, basename="invoice")
router.register("billing_runs", BillingRunViewSet, basename="billing-run")
router.register("credit_notes", CreditNoteViewSet, basename="credit-note")
urlpatterns = [
    path("invoices/<str:pk>/credit_notes/", InvoiceCreditNotesView.as_view(), name="invoice-credit-notes"),
    path("customers/<str:external_id>/coupons/", CustomerCouponsView.as_view(), name="customer-coupons"),
    *router.urls,
]
