"""Credit note endpoints (API.md, Invoices): thin callers of `invoicing.credit_notes`.

POST /api/v1/invoices/{id}/credit_notes/  (billing:write) — issue one; GET lists the invoice's.
GET  /api/v1/credit_notes/?invoice=&customer=&status=  and  /api/v1/credit_notes/{id}/  (billing:read)."""

from __future__ import annotations

import uuid

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from common.errors import NotFoundError
from invoicing.credit_notes import credit_note_create
from invoicing.models import CreditNote, CreditNoteLine
from invoicing.selectors import invoice_get
from invoicing.serializers import CreditNoteCreateSerializer, CreditNoteSerializer


def _credit_notes():
    return (CreditNote.objects.select_related("invoice", "customer")
            .prefetch_related(Prefetch("lines", queryset=CreditNoteLine.objects.select_related("credit_note")))
            .order_by("-issue_date", "-number"))


def _invoice(pk: str):
    return invoice_get(invoice_id=pk)


def _credit_note(pk: str) -> CreditNote:
    try:
        uuid.UUID(str(pk))
    except ValueError as exc:
        raise NotFoundError(f"Credit note '{pk}' not found.") from exc
    note = _credit_notes().filter(pk=pk).first()
    if note is None:
        raise NotFoundError(f"Credit note '{pk}' not found.")
    return note


class InvoiceCreditNotesView(APIView):
    @extend_schema(request=CreditNoteCreateSerializer, responses={201: CreditNoteSerializer})
    def post(self, request, pk):
        invoice = _invoice(pk)
        serializer = CreditNoteCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        lines = [dict(item) for item in data.get("lines") or []] or None
        note = credit_note_create(invoice=invoice, amount=data.get("amount"), lines=lines, reason=data["reason"],
                                  outcome=data.get("outcome") or None, actor=request.auth)
        return Response(CreditNoteSerializer(_credit_note(note.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: CreditNoteSerializer(many=True)})
    def get(self, request, pk):
        invoice = _invoice(pk)
        notes = _credit_notes().filter(invoice=invoice).order_by("number")
        return Response({"results": CreditNoteSerializer(notes, many=True).data, "next": None})


class CreditNoteViewSet(viewsets.GenericViewSet):
    serializer_class = CreditNoteSerializer
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        qs = _credit_notes()
        params = self.request.query_params
        if params.get("invoice"):
            try:
                qs = qs.filter(invoice_id=uuid.UUID(params["invoice"]))
            except ValueError:
                qs = qs.none()
        if params.get("customer"):
            qs = qs.filter(customer__external_id=params["customer"])
        if params.get("status"):
            qs = qs.filter(status__in=[s.strip() for s in params["status"].split(",") if s.strip()])
        return qs

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(CreditNoteSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(CreditNoteSerializer(_credit_note(pk)).data)
