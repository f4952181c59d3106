"""Payments API (API.md "Payments"): thin callers of payments.services / selectors."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from common.errors import ApplicationError
from customers.selectors import customer_get
from invoicing.selectors import invoice_get
from invoicing.serializers import InvoiceSerializer
from invoicing.services import invoice_mark_uncollectible
from payments.models import Payment, PaymentMethod
from payments.selectors import payment_get, payment_methods_for, payments_list
from payments.serializers import (ManualPaymentSerializer, PaymentMethodCreateSerializer, PaymentMethodSerializer,
                                  PaymentSerializer, PayNowSerializer, UncollectibleReasonSerializer)
from payments.services import payment_charge_invoice, payment_method_attach, payment_record_manual
from payments.webhooks import webhook_receive


class CustomerPaymentMethodsView(APIView):
    @extend_schema(responses={200: PaymentMethodSerializer(many=True)})
    def get(self, request, external_id):
        customer = customer_get(external_id=external_id)
        return Response(PaymentMethodSerializer(payment_methods_for(customer=customer), many=True).data)

    @extend_schema(request=PaymentMethodCreateSerializer, responses={201: PaymentMethodSerializer})
    def post(self, request, external_id):
        customer = customer_get(external_id=external_id)
        serializer = PaymentMethodCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        method = payment_method_attach(customer=customer, stripe_payment_method=data["stripe_payment_method"],
                                       default=data["default"], actor=request.auth)
        return Response(PaymentMethodSerializer(method).data, status=status.HTTP_201_CREATED)


class PaymentViewSet(viewsets.GenericViewSet):
    serializer_class = PaymentSerializer
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        params = self.request.query_params
        return payments_list(invoice=params.get("invoice"), customer=params.get("customer"), status=params.get("status"))

    @extend_schema(parameters=[OpenApiParameter("invoice", str), OpenApiParameter("customer", str),
                               OpenApiParameter("status", str)])
    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(PaymentSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(PaymentSerializer(payment_get(payment_id=pk)).data)


class InvoicePaymentsView(APIView):
    @extend_schema(request=ManualPaymentSerializer, responses={201: PaymentSerializer})
    def post(self, request, pk):
        invoice = invoice_get(invoice_id=pk)
        serializer = ManualPaymentSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        payment = payment_record_manual(invoice=invoice, amount=data["amount"], paid_on=data["date"],
                                        method=data["method"], reference=data["reference"],
                                        currency=data.get("currency"), actor=request.auth)
        return Response(PaymentSerializer(payment_get(payment_id=payment.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: PaymentSerializer(many=True)})
    def get(self, request, pk):
        invoice = invoice_get(invoice_id=pk)
        return Response({"results": PaymentSerializer(payments_list(invoice=str(invoice.pk)), many=True).data,
                         "next": None})


class InvoicePayView(APIView):
    @extend_schema(request=PayNowSerializer, responses={
        201: PaymentSerializer, 409: OpenApiResponse(description="nothing due, no payment method, or a charge in flight")})
    def post(self, request, pk):
        """Charge the default (or the given) payment method now. 201 with the payment: `succeeded`,
        or `failed` with the decline codes."""
        invoice = invoice_get(invoice_id=pk)
        serializer = PayNowSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        method = None
        if "payment_method" in serializer.validated_data:
            method = PaymentMethod.objects.filter(pk=serializer.validated_data["payment_method"],
                                                  customer_id=invoice.customer_id, detached_at__isnull=True).first()
            if method is None:
                raise ApplicationError("Unknown payment method for this customer.",
                                       fields={"payment_method": ["unknown payment method"]})
        attempt = payment_charge_invoice(invoice=invoice, payment_method=method, actor=request.auth)
        payment = Payment.objects.get(attempt=attempt)
        return Response(PaymentSerializer(payment_get(payment_id=payment.pk)).data, status=status.HTTP_201_CREATED)


class InvoiceMarkUncollectibleView(APIView):
    @extend_schema(request=UncollectibleReasonSerializer, responses={200: InvoiceSerializer})
    def post(self, request, pk):
        serializer = UncollectibleReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invoice_mark_uncollectible(invoice=invoice_get(invoice_id=pk), actor=request.auth,
                                   reason=serializer.validated_data["reason"])
        return Response(InvoiceSerializer(invoice_get(invoice_id=pk)).data)


class StripeWebhookView(APIView):
    """Stripe's webhook receiver: no API key; the `Stripe-Signature` header is the authentication."""

    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(request=None, responses={200: OpenApiResponse(description="stored (and handled) once"),
                                            400: OpenApiResponse(description="invalid signature or payload")})
    def post(self, request):
        outcome = webhook_receive(payload=request.body, signature=request.headers.get("Stripe-Signature", ""))
        return Response({"received": True, "replay": outcome.replay, "result": outcome.result})
