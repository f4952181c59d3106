from rest_framework.routers import SimpleRouter

from catalog.api import BillableMetricViewSet, CouponViewSet, PlanViewSet, TaxRateViewSet

router = SimpleRouter()
router.register("billable_metrics", BillableMetricViewSet, basename="billable-metric")
router.register("plans", PlanViewSet, basename="plan")
router.register("coupons", CouponViewSet, basename="coupon")
router.register("tax_rates", TaxRateViewSet, basename="tax-rate")
# POST/GET customers/{external_id}/coupons/ lives in invoicing/urls.py: redemptions belong to invoicing
# (they name a customer and maybe a subscription, and invoices use them up; DESIGN.md §1).
urlpatterns = router.urls
