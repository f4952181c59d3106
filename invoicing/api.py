import json

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import renderers, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from invoicing.allocation import invoice_allocation
from invoicing.billing_run import billing_run, billing_run_enqueue
from invoicing.selectors import billing_run_get, invoice_get, invoices_list
from invoicing.serializers import (
    BillingRunCreateSerializer,
    BillingRunSerializer,
    InvoiceSerializer,
    MarkPaidSerializer,
    ReasonSerializer,
)
from invoicing.emails import invoice_email_send
from invoicing.explanations import invoice_explanation
from invoicing.models import InvoiceEmail
from invoicing.pdf import invoice_pdf_bytes, invoice_pdf_filename
from invoicing.services import invoice_finalize, invoice_mark_paid, invoice_void


class PDFRenderer(renderers.BaseRenderer):
    """Lets `Accept: application/pdf` through content negotiation; the PDF view returns the bytes
    itself, so this only ever renders error bodies (as JSON)."""

    media_type = "application/pdf"
    format = "pdf"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, bytes):
            return data
        return json.dumps(data).encode()


class InvoiceEmailSerializer(serializers.ModelSerializer):
    # Kept beside the one view that returns it (serializers.py belongs to the totals/credit-notes work).
    class Meta:
        model = InvoiceEmail
        fields = ["id", "invoice", "credit_note", "to", "subject", "status", "error", "requested_by", "created_at",
                  "sent_at"]
        read_only_fields = fields


class SendInvoiceSerializer(serializers.Serializer):
    to = serializers.EmailField(required=False, help_text="Defaults to the billing e-mail frozen on the invoice")


class InvoiceViewSet(viewsets.GenericViewSet):
    serializer_class = InvoiceSerializer
    lookup_value_regex = "[^/]+"
    scope_map = {"pdf": "billing:read", "send": "billing:write", "explanation": "billing:read",
                 "allocation": "billing:read"}

    def get_queryset(self):
        params = self.request.query_params
        return invoices_list(customer=params.get("customer"), subscription=params.get("subscription"),
                             status=params.get("status"))

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(InvoiceSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(InvoiceSerializer(invoice_get(invoice_id=pk)).data)

    @extend_schema(request=None, responses={200: InvoiceSerializer})
    @action(detail=True, methods=["post"])
    def finalize(self, request, pk=None):
        invoice_finalize(invoice=invoice_get(invoice_id=pk), actor=request.auth)
        return Response(InvoiceSerializer(invoice_get(invoice_id=pk)).data)

    @extend_schema(request=ReasonSerializer, responses={200: InvoiceSerializer})
    @action(detail=True, methods=["post"])
    def void(self, request, pk=None):
        serializer = ReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invoice_void(invoice=invoice_get(invoice_id=pk), actor=request.auth, reason=serializer.validated_data["reason"])
        return Response(InvoiceSerializer(invoice_get(invoice_id=pk)).data)

    @extend_schema(request=MarkPaidSerializer, responses={200: InvoiceSerializer})
    @action(detail=True, methods=["post"])
    def mark_paid(self, request, pk=None):
        invoice = invoice_get(invoice_id=pk)
        serializer = MarkPaidSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        invoice_mark_paid(invoice=invoice, amount=data.get("amount"), paid_on=data.get("date"),
                          reference=data.get("reference", ""), actor=request.auth)
        return Response(InvoiceSerializer(invoice_get(invoice_id=pk)).data)

    @extend_schema(request=None, responses={(200, "application/pdf"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"], renderer_classes=[renderers.JSONRenderer, PDFRenderer])
    def pdf(self, request, pk=None):
        """The invoice PDF: the stored document of an issued invoice (rendered and stored now if it
        is not yet), a watermarked preview for a draft."""
        invoice = invoice_get(invoice_id=pk)
        filename = invoice_pdf_filename(invoice)
        response = HttpResponse(invoice_pdf_bytes(invoice=invoice), content_type="application/pdf")
        disposition = "inline" if request.query_params.get("inline") else "attachment"
        response["Content-Disposition"] = f'{disposition}; filename="{filename}"'
        return response

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def explanation(self, request, pk=None):
        """Plain-language explanation of the invoice and of its change since the previous one."""
        return Response(invoice_explanation(invoice=invoice_get(invoice_id=pk)))

    @extend_schema(request=None, parameters=[OpenApiParameter("by", str, required=True, description="event property")],
                   responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def allocation(self, request, pk=None):
        """The usage lines split by an event property in proportion to units (cents by largest remainder)."""
        return Response(invoice_allocation(invoice=invoice_get(invoice_id=pk), by=request.query_params.get("by", "")))

    @extend_schema(request=SendInvoiceSerializer,
                   responses={201: InvoiceEmailSerializer,
                              409: OpenApiResponse(description="not an issued invoice, or no e-mail address (`to`)")})
    @action(detail=True, methods=["post"])
    def send(self, request, pk=None):
        """(Re)send the invoice by e-mail with its PDF. Logs a delivery row: 201 with `status` `sent`
        or `failed` (and `error`, e.g. the mail server refused). No address on the invoice and no
        `to` → 409 `no_email_address`."""
        serializer = SendInvoiceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        log = invoice_email_send(invoice=invoice_get(invoice_id=pk), actor=request.auth, to=serializer.validated_data.get("to"))
        return Response(InvoiceEmailSerializer(log).data, status=status.HTTP_201_CREATED)


class BillingRunViewSet(viewsets.GenericViewSet):
    serializer_class = BillingRunSerializer
    scope_map = {"create": "admin", "retrieve": "billing:read"}

    @extend_schema(request=BillingRunCreateSerializer,
                   responses={201: BillingRunSerializer, 202: BillingRunSerializer,
                              409: OpenApiResponse(description="billing_run_too_large: send \"wait\": false")})
    def create(self, request):
        serializer = BillingRunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if not data["wait"]:
            run = billing_run_enqueue(as_of=data["as_of"], actor=request.auth, auto_finalize=data["finalize"],
                                      chunk_size=settings.BILLING_RUN_CHUNK_SIZE)
            return Response(BillingRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)
        run = billing_run(as_of=data["as_of"], actor=request.auth, auto_finalize=data["finalize"],
                          chunk_size=settings.BILLING_RUN_CHUNK_SIZE,
                          max_subscriptions=settings.BILLING_RUN_SYNC_MAX_SUBSCRIPTIONS, take_over="enqueue")
        return Response(BillingRunSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH)])
    def retrieve(self, request, pk=None):
        return Response(BillingRunSerializer(billing_run_get(run_id=pk)).data)


