"""Events API (thin): parse the body, call the ingestion service, shape the answer (API.md)."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiTypes, extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from common.errors import ApplicationError, ConflictError
from common.parsers import DecimalJSONParser
from subscriptions.selectors import subscription_get
from usage.live import subscription_usage_current
from usage.models import RejectReason
from usage.services.dead_letters import dead_letter_record
from usage.services.ingest import MAX_BATCH, event_ingest, event_ingest_batch
from usage.services.validation import Status

# Fixed answers, sent without DRF content negotiation/rendering (the single-event hot path).
ACCEPTED = b'{"status":"accepted"}'
DUPLICATE = b'{"status":"duplicate"}'


def raw_body_text(body: bytes) -> str:
    """The body as kept verbatim on a dead letter, except NUL, which PostgreSQL text cannot hold: stored escaped."""
    return body.decode("utf-8", errors="replace").replace("\x00", "\\u0000")


def _raw_body(request) -> str:
    return raw_body_text(request._request.body)


def event_answer(result) -> HttpResponse:
    """The answer to one ingested event (an IngestResult): 202 accepted or 200 duplicate; a rejected
    or conflicting event raises the API error (its dead letter is already stored)."""
    if result.status == Status.ACCEPTED:
        return HttpResponse(ACCEPTED, status=status.HTTP_202_ACCEPTED, content_type="application/json")
    if result.status == Status.DUPLICATE:
        return HttpResponse(DUPLICATE, status=status.HTTP_200_OK, content_type="application/json")
    if result.status == Status.CONFLICT:
        raise ConflictError(result.error.message, code=result.error.code, fields=result.error.fields)
    raise ApplicationError(result.error.message, code=result.error.code, fields=result.error.fields)


def _parsed_body(request, raw: str, source: str):
    """request.data, or a dead letter + the API error when the body is not JSON."""
    try:
        return request.data
    except (exceptions.ParseError, exceptions.UnsupportedMediaType) as exc:
        dead_letter_record(raw_body=raw, reason=RejectReason.MALFORMED_BODY, message=str(exc.detail), source=source)
        raise


class EventView(APIView):
    """POST /api/v1/events/. Served by billing_site.event_fast_path for well-formed authenticated posts;
    this view answers the rest and is the reference the fast path is tested against."""

    parser_classes = [DecimalJSONParser]
    required_scopes = {"POST": "usage:write"}

    @extend_schema(request=OpenApiTypes.OBJECT, responses={202: OpenApiTypes.OBJECT, 200: OpenApiTypes.OBJECT})
    def post(self, request):
        raw = _raw_body(request)  # read before parsing: kept verbatim on a dead letter
        return event_answer(event_ingest(payload=_parsed_body(request, raw, "single"), raw_body=raw))


class EventBatchView(APIView):
    parser_classes = [DecimalJSONParser]
    required_scopes = {"POST": "usage:write"}

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT})
    def post(self, request):
        raw = _raw_body(request)
        data = _parsed_body(request, raw, "batch")
        events = data.get("events") if isinstance(data, dict) else None
        if not isinstance(events, list):
            dead_letter_record(raw_body=raw, reason=RejectReason.MALFORMED_BODY, source="batch",
                               message="The body must be {\"events\": [ ... ]}.")
            raise ApplicationError("The body must be {\"events\": [ ... ]}.", code=RejectReason.MALFORMED_BODY,
                                   fields={"events": ["required: a list of events"]})
        if len(events) > MAX_BATCH:
            message = f"At most {MAX_BATCH} events per batch; got {len(events)}. Split the batch."
            dead_letter_record(raw_body=raw, reason=RejectReason.BATCH_TOO_LARGE, source="batch", message=message)
            raise ApplicationError(message, code=RejectReason.BATCH_TOO_LARGE, fields={"events": ["too many"]})
        return Response(event_ingest_batch(events=events).as_dict(), status=status.HTTP_200_OK)


class SubscriptionUsageView(APIView):
    """GET /api/v1/subscriptions/{external_id}/usage/: the open period rated live, with a forecast."""

    required_scopes = {"GET": "billing:read"}

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, external_id: str):
        subscription = subscription_get(external_id=external_id)
        return Response(subscription_usage_current(subscription=subscription))
