"""Coupon redemption endpoints (API.md, Coupons): thin callers of `invoicing.coupons`.

POST /api/v1/customers/{external_id}/coupons/ (billing:write) applies a coupon; GET lists the
customer's redemptions (billing:read). Here, not in catalog or subscriptions, because a redemption
names a customer and optionally a subscription and is used up by invoices (DESIGN.md §1)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.selectors import coupon_get
from common.pagination import whole_list_schema
from customers.selectors import customer_get
from invoicing.coupons import coupon_apply, coupon_redemptions_for_customer
from invoicing.serializers import CouponApplySerializer, CouponRedemptionSerializer
from subscriptions.selectors import subscription_get


class CustomerCouponsView(APIView):
    """POST /customers/{external_id}/coupons/ applies a coupon (billing:write); GET lists the
    customer's redemptions (billing:read)."""

    @extend_schema(responses={200: whole_list_schema("CouponRedemptionList", CouponRedemptionSerializer)})
    def get(self, request, external_id):
        redemptions = coupon_redemptions_for_customer(customer=customer_get(external_id=external_id))
        return Response({"results": CouponRedemptionSerializer(redemptions, many=True).data, "next": None})

    @extend_schema(request=CouponApplySerializer, responses={201: CouponRedemptionSerializer})
    def post(self, request, external_id):
        customer = customer_get(external_id=external_id)
        serializer = CouponApplySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        coupon = coupon_get(serializer.validated_data["coupon"])
        subscription_id = serializer.validated_data.get("subscription")
        subscription = subscription_get(external_id=subscription_id) if subscription_id else None
        redemption = coupon_apply(coupon=coupon, customer=customer, subscription=subscription, actor=request.auth)
        return Response(CouponRedemptionSerializer(redemption).data, status=status.HTTP_201_CREATED)
