from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from catalog.selectors import (metric_get, metric_list, plan_current_version, plan_current_versions, plan_get,
                               plan_list, plan_version_get)
from catalog.serializers import BillableMetricSerializer, PlanCreateSerializer, PlanOutputSerializer, PlanUpdateSerializer
from common.errors import ApplicationError
from catalog.services import billable_metric_create, plan_create, plan_update


class BillableMetricViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = BillableMetricSerializer
    lookup_field = "code"
    lookup_value_regex = "[^/]+"
    filterset_fields = ("aggregation",)
    http_method_names = ["get", "post", "head", "options"]

    def get_queryset(self):
        return metric_list()

    def create(self, request):
        serializer = BillableMetricSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        metric = billable_metric_create(actor=request.auth, **serializer.validated_data)
        return Response(BillableMetricSerializer(metric).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request, code=None):
        return Response(BillableMetricSerializer(metric_get(code)).data)


class PlanViewSet(viewsets.GenericViewSet):
    serializer_class = PlanOutputSerializer
    lookup_field = "code"
    lookup_value_regex = "[^/]+"
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        return plan_list()

    @extend_schema(responses={200: PlanOutputSerializer(many=True)})
    def list(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        versions = plan_current_versions(page)
        data = [PlanOutputSerializer(versions[p.pk]).data for p in page if p.pk in versions]
        return self.get_paginated_response(data)

    @extend_schema(request=PlanCreateSerializer, responses={201: PlanOutputSerializer})
    def create(self, request):
        serializer = PlanCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        plan = plan_create(actor=request.auth, **serializer.validated_data)
        return Response(PlanOutputSerializer(plan_current_version(plan)).data, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[OpenApiParameter("version", int, description="A specific version (default: current)")],
                   responses={200: PlanOutputSerializer})
    def retrieve(self, request, code=None):
        plan = plan_get(code)
        version = request.query_params.get("version")
        if version:
            if not version.isdigit():
                raise ApplicationError("version must be a positive integer.", fields={"version": ["not an integer"]})
            return Response(PlanOutputSerializer(plan_version_get(plan=plan, version=int(version))).data)
        return Response(PlanOutputSerializer(plan_current_version(plan)).data)

    @extend_schema(request=PlanUpdateSerializer, responses={200: PlanOutputSerializer})
    def partial_update(self, request, code=None):
        plan = plan_get(code)
        serializer = PlanUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        plan = plan_update(plan=plan, actor=request.auth, **serializer.validated_data)
        return Response(PlanOutputSerializer(plan_current_version(plan)).data)


# --- taxes and coupons ---------------------------------------------------------------------------

from catalog.selectors import coupon_get, coupon_list, coupon_redemptions_for_customer, tax_rate_list  # noqa: E402
from catalog.serializers import (CouponApplySerializer, CouponCreateSerializer, CouponOutputSerializer,  # noqa: E402
                                 CouponRedemptionSerializer, TaxRateSerializer)
from catalog.services import coupon_apply, coupon_create, tax_rate_create  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

from common.pagination import whole_list_schema  # noqa: E402


class TaxRateViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """GET (billing:read) lists rates, POST (billing:write) creates one."""

    serializer_class = TaxRateSerializer
    filterset_fields = ("country", "region", "active")
    http_method_names = ["get", "post", "head", "options"]

    def get_queryset(self):
        return tax_rate_list()

    def create(self, request):
        serializer = TaxRateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rate = tax_rate_create(actor=request.auth, **serializer.validated_data)
        return Response(TaxRateSerializer(rate).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request, pk=None):
        return Response(TaxRateSerializer(self.get_object()).data)


class CouponViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = CouponOutputSerializer
    lookup_field = "code"
    lookup_value_regex = "[^/]+"
    filterset_fields = ("kind", "duration", "active")
    http_method_names = ["get", "post", "head", "options"]

    def get_queryset(self):
        return coupon_list()

    @extend_schema(request=CouponCreateSerializer, responses={201: CouponOutputSerializer})
    def create(self, request):
        serializer = CouponCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        coupon = coupon_create(actor=request.auth, **serializer.validated_data)
        return Response(CouponOutputSerializer(coupon_get(coupon.code)).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request, code=None):
        return Response(CouponOutputSerializer(coupon_get(code)).data)


class CustomerCouponsView(APIView):
    """POST /customers/{external_id}/coupons/ applies a coupon (billing:write); GET lists the
    customer's redemptions (billing:read)."""

    @extend_schema(responses={200: whole_list_schema("CouponRedemptionList", CouponRedemptionSerializer)})
    def get(self, request, external_id):
        from customers.selectors import customer_get

        redemptions = coupon_redemptions_for_customer(customer=customer_get(external_id=external_id))
        return Response({"results": CouponRedemptionSerializer(redemptions, many=True).data, "next": None})

    @extend_schema(request=CouponApplySerializer, responses={201: CouponRedemptionSerializer})
    def post(self, request, external_id):
        from customers.selectors import customer_get
        from subscriptions.selectors import subscription_get

        customer = customer_get(external_id=external_id)
        serializer = CouponApplySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        coupon = coupon_get(serializer.validated_data["coupon"])
        subscription_id = serializer.validated_data.get("subscription")
        subscription = subscription_get(external_id=subscription_id) if subscription_id else None
        redemption = coupon_apply(coupon=coupon, customer=customer, subscription=subscription, actor=request.auth)
        return Response(CouponRedemptionSerializer(redemption).data, status=status.HTTP_201_CREATED)
