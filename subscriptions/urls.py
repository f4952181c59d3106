from rest_framework.routers import SimpleRouter

from subscriptions.api import SubscriptionViewSet

# GET subscriptions/{external_id}/usage/ lives in usage/urls.py (the usage app owns it).
router = SimpleRouter()
router.register("subscriptions", SubscriptionViewSet, basename="subscription")
urlpatterns = router.urls
