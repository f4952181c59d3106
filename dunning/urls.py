from rest_framework.routers import SimpleRouter

from dunning.api import DunningCaseViewSet

router = SimpleRouter()
router.register("dunning_cases", DunningCaseViewSet, basename="dunning-case")
urlpatterns = [*router.urls]
