from django.urls import path

from usage.api import EventBatchView, EventView, SubscriptionUsageView

urlpatterns = [
    path("events/", EventView.as_view(), name="event-ingest"),
    path("events/batch/", EventBatchView.as_view(), name="event-ingest-batch"),
    path("subscriptions/<str:external_id>/usage/", SubscriptionUsageView.as_view(), name="subscription-usage"),
]
