from rest_framework.routers import SimpleRouter

from invoicing.api import BillingRunViewSet, InvoiceViewSet

router = SimpleRouter()
router.register("invoices", InvoiceViewSet, basename="invoice")
router.register("billing_runs", BillingRunViewSet, basename="billing-run")
urlpatterns = router.urls
