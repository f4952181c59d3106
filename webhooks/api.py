from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from webhooks.models import WebhookDelivery
from webhooks.selectors import (
    webhook_deliveries_list,
    webhook_delivery_get,
    webhook_endpoint_get,
    webhook_endpoints_list,
)
from webhooks.serializers import (
    WebhookDeliverySerializer,
    WebhookEndpointCreatedSerializer,
    WebhookEndpointCreateSerializer,
    WebhookEndpointSerializer,
    WebhookEndpointUpdateSerializer,
)
from webhooks.services import (
    webhook_delivery_retry,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_update,
)

# Endpoints are configuration: `admin` changes them; `billing:read` may look.
WRITE_SCOPES = {"POST": "admin", "PATCH": "admin", "DELETE": "admin"}


class WebhookEndpointViewSet(viewsets.GenericViewSet):
    serializer_class = WebhookEndpointSerializer
    required_scopes = WRITE_SCOPES
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return webhook_endpoints_list()

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(WebhookEndpointSerializer(page, many=True).data)

    @extend_schema(request=WebhookEndpointCreateSerializer, responses={201: WebhookEndpointCreatedSerializer})
    def create(self, request):
        serializer = WebhookEndpointCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_create(**serializer.validated_data, actor=request.auth)
        return Response(WebhookEndpointCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request, pk=None):
        return Response(WebhookEndpointSerializer(webhook_endpoint_get(endpoint_id=pk)).data)

    @extend_schema(request=WebhookEndpointUpdateSerializer, responses={200: WebhookEndpointSerializer})
    def partial_update(self, request, pk=None):
        endpoint = webhook_endpoint_get(endpoint_id=pk)
        serializer = WebhookEndpointUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_update(endpoint=endpoint, actor=request.auth, **serializer.validated_data)
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        webhook_endpoint_delete(endpoint=webhook_endpoint_get(endpoint_id=pk), actor=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(parameters=[OpenApiParameter("status", str, description="pending, succeeded, failed (comma-separated)")],
                   responses={200: WebhookDeliverySerializer(many=True)})
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk=None):
        endpoint = webhook_endpoint_get(endpoint_id=pk)
        page = self.paginate_queryset(webhook_deliveries_list(endpoint=endpoint, status=request.query_params.get("status")))
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)


class WebhookDeliveryViewSet(viewsets.GenericViewSet):
    serializer_class = WebhookDeliverySerializer
    required_scopes = WRITE_SCOPES

    def get_queryset(self):
        return WebhookDelivery.objects.none()  # typed path id for the schema; lookups go through the selector

    def retrieve(self, request, pk=None):
        return Response(WebhookDeliverySerializer(webhook_delivery_get(delivery_id=pk)).data)

    @extend_schema(request=None, responses={200: WebhookDeliverySerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        delivery = webhook_delivery_retry(delivery=webhook_delivery_get(delivery_id=pk), actor=request.auth)
        return Response(WebhookDeliverySerializer(webhook_delivery_get(delivery_id=delivery.pk)).data)
