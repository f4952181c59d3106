"""POST /api/v1/events/ without URL resolving and DRF's view cycle: the single-event hot path.

A single-event post is the API's most frequent call and does the least work (two prepared statements),
so what surrounds it counts: DRF's cycle (its Request, content negotiation, the authentication,
permission and throttle classes, exception handling) and the URL resolver, and a Redis round trip
for the API-key-set version besides the rate limiter's own (README "Usage at scale", issue 20).

This middleware, last in MIDDLEWARE so that every layer above it (security headers, X-Frame-Options,
Idempotency-Key replays) applies as before, serves the call with the view's own services: the API key
(customers.services), the scope EventView requires, the strict Decimal JSON loader, the ingestion
rate limit (billing_site.ratelimit), usage's event_ingest and EventView's answers (202, 200, or the
4xx of a rejected or conflicting event, its dead letter stored). It serves keys this process has
authenticated within the key cache's lifetime, and reads the key-set version (which says whether that
cache still holds: a revocation bumps it) in the rate-limit script's round trip.

Whatever it does not own goes to the view before anything is stored or counted: a key this process
has not cached (the view authenticates and caches it), no or bad credentials, a missing scope, a
body that is not a JSON document (the view dead-letters it), another media type or charset, an
Accept the view might refuse, a query string. Three cases go to the view after the count: a call
over its limit and a key revoked since it was cached (counted once more, which past the limit or for
a dead key changes nothing), and an unreachable Redis (the view knows what that means for keys and
limits). A database error goes to the view as well, which answers 503 when the database is still
gone; ingestion is idempotent by transaction id, so a second attempt never stores an event twice.
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
from billing_site.ratelimit import rate_limit_wait_and_get
from common.errors import ApplicationError, application_error_response
from common.redis import RedisError
from customers.services import KEY_VERSION_REDIS_KEY, api_key_authenticate, api_key_cached
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
        candidate = api_key_cached(raw_key=raw_key) if raw_key else None
        if candidate is None or not candidate.has_scope(self.scope):
            return None  # the view authenticates a key this process has not seen lately, and caches it
        try:
            body = request.body
            payload = self.parser.parse(io.BytesIO(body), "application/json", {"encoding": "utf-8"})
        except (RequestDataTooBig, ParseError):
            return None
        try:  # one Redis round trip: the count, and the key-set version that says whether the cache still holds
            wait, version = rate_limit_wait_and_get(candidate, ingestion=True, key=KEY_VERSION_REDIS_KEY)
        except RedisError:
            return None  # the view knows what an unreachable Redis means for keys and limits
        if api_key_authenticate(raw_key=raw_key, version_reply=version) is None or wait is not None:
            return None  # revoked since cached (the view answers 401), or over the limit (429)
        try:
            return event_answer(event_ingest(payload=payload, raw_body=raw_body_text(body)))
        except ApplicationError as exc:
            return application_error_response(exc)
