from rest_framework.routers import SimpleRouter

from catalog.api import BillableMetricViewSet, PlanViewSet

router = SimpleRouter()
router.register("billable_metrics", BillableMetricViewSet, basename="billable-metric")
router.register("plans", PlanViewSet, basename="plan")
urlpatterns = router.urls
