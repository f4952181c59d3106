from django.urls import path

from usage.api import EventBatchView, EventView

urlpatterns = [
    path("events/", EventView.as_view(), name="event-ingest"),
    path("events/batch/", EventBatchView.as_view(), name="event-ingest-batch"),
]
