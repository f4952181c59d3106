from django.urls import path
from rest_framework.routers import SimpleRouter

from catalog.api import BillableMetricViewSet, CouponViewSet, CustomerCouponsView, PlanViewSet, TaxRateViewSet

router = SimpleRouter()
router.register("billable_metrics", BillableMetricViewSet, basename="billable-metric")
router.register("plans", PlanViewSet, basename="plan")
router.register("coupons", CouponViewSet, basename="coupon")
router.register("tax_rates", TaxRateViewSet, basename="tax-rate")
urlpatterns = router.urls + [
    path("customers/<str:external_id>/coupons/", CustomerCouponsView.as_view(), name="customer-coupons"),
]
