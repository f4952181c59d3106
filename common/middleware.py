import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse

from common.errors import error_body
from common.parsers import NUL, NUL_MESSAGE

logger = logging.getLogger(__name__)


class RejectNulMiddleware:
    """A NUL character in the path or query string would reach PostgreSQL (which refuses it) as a
    lookup or filter value: answer 400 naming the parameter instead of a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        bad = ["path"] if NUL in request.path else []
        bad += [key for key, values in request.GET.lists() if NUL in key or any(NUL in v for v in values)]
        if not bad:
            return self.get_response(request)
        if request.path.startswith("/api/"):
            return JsonResponse(error_body("invalid", NUL_MESSAGE, {name: [NUL_MESSAGE] for name in bad}), status=400)
        return HttpResponseBadRequest(NUL_MESSAGE)


class DatabaseUnavailableMiddleware:
    """PostgreSQL down, restarting or refusing connections: 503 with `Retry-After` (in the API
    error shape under /api/), not a 500 — the request may simply be retried. Stale pooled
    connections after a restart are caught before use by CONN_HEALTH_CHECKS (settings)."""

    RETRY_AFTER_SECONDS = 5
    MESSAGE = "The database is unavailable; retry shortly."

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        logger.warning("database unavailable for %s %s: %s", request.method, request.path, exception)
        if request.path.startswith("/api/"):
            response = JsonResponse(error_body("database_unavailable", self.MESSAGE), status=503)
        else:
            response = HttpResponse(self.MESSAGE, status=503, content_type="text/plain")
        response["Retry-After"] = str(self.RETRY_AFTER_SECONDS)
        return response
