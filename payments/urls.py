from django.urls import path
from rest_framework.routers import SimpleRouter

from payments.api import (CustomerPaymentMethodsView, InvoiceMarkUncollectibleView, InvoicePaymentsView,
                          InvoicePayView, PaymentViewSet, StripeWebhookView)

router = SimpleRouter()
router.register("payments", PaymentViewSet, basename="payment")
urlpatterns = [
    path("customers/<str:external_id>/payment_methods/", CustomerPaymentMethodsView.as_view(),
         name="customer-payment-methods"),
    path("invoices/<str:pk>/payments/", InvoicePaymentsView.as_view(), name="invoice-payments"),
    path("invoices/<str:pk>/pay/", InvoicePayView.as_view(), name="invoice-pay"),
    path("invoices/<str:pk>/mark_uncollectible/", InvoiceMarkUncollectibleView.as_view(),
         name="invoice-mark-uncollectible"),
    path("stripe/webhook/", StripeWebhookView.as_view(), name="stripe-webhook"),
    *router.urls,
]
