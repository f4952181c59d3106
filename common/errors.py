"""One domain error type and the one DRF exception handler that shapes every API error as
{"error": {"code", "message", "fields"}} (API.md)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpResponse, JsonResponse
from django.views.defaults import page_not_found, server_error
from rest_framework import exceptions, status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApplicationError(Exception):
    """A business rule said no. `status_code` maps it to HTTP; `fields` names the inputs at fault."""

    status_code = 400

    def __init__(self, message: str, *, code: str = "invalid", fields: dict | None = None, status_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.fields = fields or {}
        if status_code is not None:
            self.status_code = status_code


class NotFoundError(ApplicationError):
    status_code = 404

    def __init__(self, message: str, *, code: str = "not_found", fields: dict | None = None):
        super().__init__(message, code=code, fields=fields)


class ConflictError(ApplicationError):
    """Duplicate id or illegal state transition."""

    status_code = 409

    def __init__(self, message: str, *, code: str = "conflict", fields: dict | None = None):
        super().__init__(message, code=code, fields=fields)


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def application_error_response(exc: ApplicationError) -> HttpResponse:
    """`exc` answered outside a DRF view, in the bytes api_exception_handler + JSONRenderer give."""
    return HttpResponse(JSONRenderer().render(error_body(exc.code, exc.message, exc.fields)),
                        status=exc.status_code, content_type="application/json")


def _flatten_fields(detail, prefix: str = "") -> dict[str, list[str]]:
    """DRF nests errors (lists of dicts for list fields); flatten to dotted field names."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors" and prefix:
                name = prefix
            out.update(_flatten_fields(value, name))
    elif isinstance(detail, list):
        if detail and all(isinstance(item, (str, exceptions.ErrorDetail)) for item in detail):
            out.setdefault(prefix or "non_field_errors", []).extend(str(item) for item in detail)
        else:
            for index, item in enumerate(detail):
                if item:
                    out.update(_flatten_fields(item, f"{prefix}[{index}]" if prefix else f"[{index}]"))
    else:
        out.setdefault(prefix or "non_field_errors", []).append(str(detail))
    return out


def _first_message(fields: dict[str, list[str]], fallback: str) -> str:
    for name, messages in fields.items():
        if messages:
            return f"{name}: {messages[0]}" if name != "non_field_errors" else messages[0]
    return fallback


def api_exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(fields)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a real bug: let Django log it and answer 500

    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten_fields(exc.detail)
        response.data = error_body("invalid", _first_message(fields, "Invalid input."), fields)
    elif isinstance(exc, exceptions.ParseError):
        response.data = error_body("malformed_body", f"Malformed request body: {exc.detail}")
    elif isinstance(exc, exceptions.NotAuthenticated):
        response.data = error_body("not_authenticated", "Authentication required: send Authorization: Bearer <key>.")
    elif isinstance(exc, exceptions.AuthenticationFailed):
        response.data = error_body("authentication_failed", str(exc.detail))
    elif isinstance(exc, exceptions.PermissionDenied):
        response.data = error_body("permission_denied", str(exc.detail))
    elif isinstance(exc, exceptions.NotFound):
        response.data = error_body("not_found", str(exc.detail))
    elif isinstance(exc, exceptions.MethodNotAllowed):
        response.data = error_body("method_not_allowed", str(exc.detail))
    elif isinstance(exc, exceptions.UnsupportedMediaType):
        response.data = error_body("unsupported_media_type", str(exc.detail))
    elif isinstance(exc, exceptions.Throttled):
        response.data = error_body("throttled", str(exc.detail))
    else:
        response.data = error_body(getattr(exc, "default_code", "error"), str(getattr(exc, "detail", exc)))
    return response


def json_not_found(request, exception=None):
    """handler404: unknown API URLs answer in the API error shape; pages keep Django's page."""
    if not request.path.startswith("/api/"):
        return page_not_found(request, exception)
    return JsonResponse(error_body("not_found", f"No such resource: {request.path}"), status=status.HTTP_404_NOT_FOUND)


def json_server_error(request):
    if not request.path.startswith("/api/"):
        return server_error(request)
    return JsonResponse(error_body("server_error", "Internal error; it has been logged."), status=500)
