from rest_framework.routers import SimpleRouter

from webhooks.api import WebhookDeliveryViewSet, WebhookEndpointViewSet

router = SimpleRouter()
router.register("webhook_endpoints", WebhookEndpointViewSet, basename="webhook-endpoint")
router.register("webhook_deliveries", WebhookDeliveryViewSet, basename="webhook-delivery")
urlpatterns = router.urls
