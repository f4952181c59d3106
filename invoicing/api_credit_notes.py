"""Credit note endpoints (API.md, Invoices): thin callers of `invoicing.credit_notes`.

POST /api/v1/invoices/{id}/credit_notes/  (billing:write) — issue one; GET lists the invoice's.
GET  /api/v1/credit_notes/?invoice=&customer=&status=  and  /api/v1/credit_notes/{id}/  (billing:read)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from common.pagination import whole_list_schema
from invoicing.credit_notes import credit_note_create, credit_note_void
from invoicing.selectors import credit_note_get, credit_notes_list, invoice_get
from invoicing.serializers import CreditNoteCreateSerializer, CreditNoteSerializer


class InvoiceCreditNotesView(APIView):
    @extend_schema(request=CreditNoteCreateSerializer, responses={201: CreditNoteSerializer})
    def post(self, request, pk):
        invoice = invoice_get(invoice_id=pk)
        serializer = CreditNoteCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        lines = [dict(item) for item in data.get("lines") or []] or None
        note = credit_note_create(invoice=invoice, amount=data.get("amount"), lines=lines, reason=data["reason"],
                                  outcome=data.get("outcome") or None, actor=request.auth)
        return Response(CreditNoteSerializer(credit_note_get(credit_note_id=note.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: whole_list_schema("InvoiceCreditNoteList", CreditNoteSerializer)})
    def get(self, request, pk):
        invoice = invoice_get(invoice_id=pk)
        notes = credit_notes_list().filter(invoice=invoice).order_by("number")
        return Response({"results": CreditNoteSerializer(notes, many=True).data, "next": None})


class VoidCreditNoteSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class CreditNoteViewSet(viewsets.GenericViewSet):
    serializer_class = CreditNoteSerializer
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        params = self.request.query_params
        return credit_notes_list(invoice=params.get("invoice"), customer=params.get("customer"),
                                 status=params.get("status"))

    @extend_schema(parameters=[OpenApiParameter("invoice", str), OpenApiParameter("customer", str),
                               OpenApiParameter("status", str)])
    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(CreditNoteSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(CreditNoteSerializer(credit_note_get(credit_note_id=pk)).data)

    @extend_schema(request=VoidCreditNoteSerializer,
                   responses={200: CreditNoteSerializer, 409: OpenApiResponse(description="already void, refunded, or its credit was used")})
    @action(detail=True, methods=["post"])
    def void(self, request, pk=None):
        serializer = VoidCreditNoteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        note = credit_note_void(credit_note=credit_note_get(credit_note_id=pk), actor=request.auth,
                                reason=serializer.validated_data["reason"])
        return Response(CreditNoteSerializer(credit_note_get(credit_note_id=note.pk)).data)
