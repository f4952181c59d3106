"""POST /api/v1/events/ without URL resolving and DRF's view cycle: the single-event hot path.

A single-event post is the API's most frequent call and does the least work (two prepared statements).
DRF's cycle around it (its Request, content negotiation, the authentication, permission and throttle
classes, exception handling) and the URL resolver cost about a fifth of its CPU: through gunicorn
with 2 workers, 900 → 1,100 events/s (README, issue 20). This middleware, last in MIDDLEWARE so that
every layer above it (security headers, X-Frame-Options, Idempotency-Key replays) applies as before,
serves the call with the view's own services in the view's order: the API key
(customers.services.api_key_authenticate), the scope EventView requires, the strict Decimal JSON
loader, the ingestion rate limit (billing_site.ratelimit.rate_limit_wait), usage's event_ingest and
EventView's answers (202, 200, or the 4xx of a rejected or conflicting event, its dead letter stored).

Whatever it does not own goes to the view before anything is stored or counted: no or bad
credentials, a missing scope, a body that is not a JSON document (the view dead-letters it), another
media type or charset, an Accept the view might refuse, a query string. A call over its rate limit
also goes to the view, which counts it once more (past the limit that changes nothing) and answers
429. A database error goes to the view as well, which answers 503 when the database is still gone;
ingestion is idempotent by transaction id, so a second attempt never stores an event twice.
`EVENT_FAST_PATH=0` turns it off. tests/usage/test_event_fast_path.py holds both paths to the same
answers, byte for byte, case by case.
"""

from __future__ import annotations

import io

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.urls import reverse
from rest_framework.exceptions import ParseError

from billing_site.api_auth import bearer_token
from billing_site.ratelimit import rate_limit_wait
from common.errors import ApplicationError, application_error_response
from customers.services import api_key_authenticate
from usage.api import EventView, event_answer, raw_body_text
from usage.services.ingest import event_ingest

# Accept values under which the view would answer JSON without negotiating anything else.
PLAIN_ACCEPT = {"", "*/*", "application/json"}
UTF8 = {"utf-8", "utf8"}


class SingleEventMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.path = None  # reversed on the first request (the URLconf is not loaded yet here)
        self.scope = EventView.required_scopes["POST"]
        self.allow = ", ".join(EventView().allowed_methods)  # the header DRF adds to the view's answers
        self.parser = EventView.parser_classes[0]()

    def __call__(self, request):
        if self.path is None:
            self.path = reverse("event-ingest")
        if request.method != "POST" or request.path_info != self.path or not settings.EVENT_FAST_PATH:
            return self.get_response(request)
        try:
            response = self._serve(request)
        except (OperationalError, InterfaceError):
            response = None
        if response is None:
            return self.get_response(request)
        response["Allow"] = self.allow
        return response

    def _plain(self, request) -> bool:
        meta = request.META
        return (request.content_type == "application/json"
                and request.content_params.get("charset", "utf-8").lower() in UTF8
                and not meta.get("QUERY_STRING")
                and meta.get("HTTP_ACCEPT", "").strip() in PLAIN_ACCEPT)

    def _serve(self, request):
        """The answer, or None for the view to give it."""
        if not self._plain(request):
            return None
        raw_key = bearer_token(request.META.get("HTTP_AUTHORIZATION", ""))
        api_key = api_key_authenticate(raw_key=raw_key) if raw_key else None
        if api_key is None or not api_key.has_scope(self.scope):
            return None
        try:
            body = request.body
            payload = self.parser.parse(io.BytesIO(body), "application/json", {"encoding": "utf-8"})
        except (RequestDataTooBig, ParseError):
            return None
        if rate_limit_wait(api_key, ingestion=True) is not None:
            return None
        try:
            return event_answer(event_ingest(payload=payload, raw_body=raw_body_text(body)))
        except ApplicationError as exc:
            return application_error_response(exc)
