from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from customers.selectors import customer_get
from subscriptions.selectors import subscription_get, subscriptions_list
from subscriptions.serializers import (
    CancelSerializer,
    ChangePlanSerializer,
    ChangeQuantitySerializer,
    PriceOverrideSerializer,
    ProrationItemSerializer,
    SubscriptionChangeSerializer,
    SubscriptionCreateSerializer,
    SubscriptionSerializer,
)
from subscriptions.services import (
    subscription_cancel,
    subscription_change_plan,
    subscription_change_quantity,
    subscription_create,
    subscription_price_override,
)


def _change_body(result) -> dict:
    return {
        **SubscriptionSerializer(result.subscription).data,
        "change": SubscriptionChangeSerializer(result.change).data,
        "proration_items": ProrationItemSerializer(result.proration_items, many=True).data,
    }


class SubscriptionViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Reads need billing:read, writes billing:write (the default scope rule)."""

    serializer_class = SubscriptionSerializer
    lookup_field = "external_id"
    lookup_value_regex = "[^/]+"
    http_method_names = ["get", "post", "head", "options"]

    def get_queryset(self):
        params = self.request.query_params
        return subscriptions_list(customer=params.get("customer"), status=params.get("status"), plan=params.get("plan"))

    def get_object(self):
        return subscription_get(external_id=self.kwargs["external_id"])

    @extend_schema(parameters=[OpenApiParameter("customer", str), OpenApiParameter("status", str), OpenApiParameter("plan", str)])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=SubscriptionCreateSerializer, responses={201: SubscriptionSerializer})
    def create(self, request):
        serializer = SubscriptionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        customer = customer_get(external_id=data.pop("customer"))
        subscription = subscription_create(customer=customer, plan_code=data.pop("plan"), actor=request.auth, **data)
        return Response(SubscriptionSerializer(subscription).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request, external_id=None):
        return Response(SubscriptionSerializer(self.get_object()).data)

    @extend_schema(request=ChangePlanSerializer, responses={200: SubscriptionSerializer})
    @action(detail=True, methods=["post"])
    def change_plan(self, request, external_id=None):
        serializer = ChangePlanSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = subscription_change_plan(
            subscription=self.get_object(), plan_code=data["plan"], plan_version=data.get("plan_version"),
            effective=data.get("effective"), on=data.get("date"), actor=request.auth,
        )
        return Response(_change_body(result))

    @extend_schema(request=PriceOverrideSerializer, responses={200: SubscriptionSerializer})
    @action(detail=True, methods=["post"])
    def price_overrides(self, request, external_id=None):
        """Customer-specific prices from `date`: a private plan version for this subscription."""
        serializer = PriceOverrideSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = subscription_price_override(subscription=self.get_object(), amount=data.get("amount"),
                                             charges=data.get("charges"), on=data.get("date"), actor=request.auth)
        return Response(_change_body(result))

    @extend_schema(request=ChangeQuantitySerializer, responses={200: SubscriptionSerializer})
    @action(detail=True, methods=["post"])
    def change_quantity(self, request, external_id=None):
        serializer = ChangeQuantitySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = subscription_change_quantity(
            subscription=self.get_object(), quantity=data["quantity"], effective=data.get("effective"),
            on=data.get("date"), actor=request.auth,
        )
        return Response(_change_body(result))

    @extend_schema(request=CancelSerializer, responses={200: SubscriptionSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, external_id=None):
        serializer = CancelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = subscription_cancel(subscription=self.get_object(), at=data["at"], on=data.get("date"), actor=request.auth)
        return Response(_change_body(result))

    @extend_schema(responses={200: inline_serializer("SubscriptionChangeHistory", fields={
        "results": SubscriptionChangeSerializer(many=True), "proration_items": ProrationItemSerializer(many=True)})})
    @action(detail=True, methods=["get"], pagination_class=None)
    def changes(self, request, external_id=None):
        subscription = self.get_object()
        changes = subscription.changes.select_related("from_plan_version__plan", "to_plan_version__plan").order_by("effective_date", "pk")
        return Response({"results": SubscriptionChangeSerializer(changes, many=True).data,
                         "proration_items": ProrationItemSerializer(subscription.proration_items.order_by("pk"), many=True).data})
