import uuid

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from common.errors import NotFoundError
from invoicing.billing import billing_run
from invoicing.selectors import billing_run_get, invoice_get, invoices_list
from invoicing.serializers import (
    BillingRunCreateSerializer,
    BillingRunSerializer,
    InvoiceSerializer,
    MarkPaidSerializer,
    ReasonSerializer,
)
from invoicing.services import invoice_finalize, invoice_mark_paid, invoice_void


def _invoice(pk: str):
    try:
        uuid.UUID(str(pk))
    except ValueError as exc:
        raise NotFoundError(f"Invoice '{pk}' not found.") from exc
    return invoice_get(invoice_id=pk)


class InvoiceViewSet(viewsets.GenericViewSet):
    serializer_class = InvoiceSerializer
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        params = self.request.query_params
        return invoices_list(customer=params.get("customer"), subscription=params.get("subscription"),
                             status=params.get("status"))

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(InvoiceSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(InvoiceSerializer(_invoice(pk)).data)

    @extend_schema(request=None, responses={200: InvoiceSerializer})
    @action(detail=True, methods=["post"])
    def finalize(self, request, pk=None):
        invoice_finalize(invoice=_invoice(pk), actor=request.auth)
        return Response(InvoiceSerializer(_invoice(pk)).data)

    @extend_schema(request=ReasonSerializer, responses={200: InvoiceSerializer})
    @action(detail=True, methods=["post"])
    def void(self, request, pk=None):
        serializer = ReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invoice_void(invoice=_invoice(pk), actor=request.auth, reason=serializer.validated_data["reason"])
        return Response(InvoiceSerializer(_invoice(pk)).data)

    @extend_schema(request=MarkPaidSerializer, responses={200: InvoiceSerializer})
    @action(detail=True, methods=["post"])
    def mark_paid(self, request, pk=None):
        invoice = _invoice(pk)
        serializer = MarkPaidSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        invoice_mark_paid(invoice=invoice, amount=data.get("amount"), paid_on=data.get("date"),
                          reference=data.get("reference", ""), actor=request.auth)
        return Response(InvoiceSerializer(_invoice(pk)).data)


class BillingRunViewSet(viewsets.GenericViewSet):
    serializer_class = BillingRunSerializer
    scope_map = {"create": "admin", "retrieve": "billing:read"}

    @extend_schema(request=BillingRunCreateSerializer, responses={201: BillingRunSerializer})
    def create(self, request):
        serializer = BillingRunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = billing_run(as_of=serializer.validated_data["as_of"], actor=request.auth,
                          auto_finalize=serializer.validated_data["finalize"])
        return Response(BillingRunSerializer(run).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request, pk=None):
        if not str(pk).isdigit():
            raise NotFoundError(f"Billing run '{pk}' not found.")
        return Response(BillingRunSerializer(billing_run_get(run_id=int(pk))).data)


