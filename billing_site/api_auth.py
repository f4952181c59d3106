"""API authentication (Bearer keys, hashed at rest) and scope checks.

Views declare `required_scopes = {"GET": "billing:read", "POST": "billing:write"}` or per action
via `scope_map`; the default is billing:read for safe methods and billing:write otherwise.
The `admin` scope grants everything."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions, permissions

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
KEYWORD = "Bearer"


def bearer_token(header: str) -> str | None:
    """The key of an `Authorization: Bearer <key>` header, or None when the header has another form."""
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != KEYWORD.lower():
        return None
    return parts[1]


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = KEYWORD

    def authenticate(self, request):
        from customers.services import api_key_authenticate  # noqa: PLC0415 — DRF loads this class from settings while common.errors is still importing (cycle)

        header = authentication.get_authorization_header(request).decode("latin-1").strip()
        if not header:
            return None
        raw_key = bearer_token(header)
        if raw_key is None:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <key>'.")
        api_key = api_key_authenticate(raw_key=raw_key)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        # request.user stays anonymous (no Django user behind a key); request.auth is the ApiKey.
        return (AnonymousUser(), api_key)

    def authenticate_header(self, request):
        return self.keyword


def required_scope(request, view) -> str:
    action = getattr(view, "action", None)
    scope_map = getattr(view, "scope_map", {}) or {}
    if action and action in scope_map:
        return scope_map[action]
    by_method = getattr(view, "required_scopes", {}) or {}
    if request.method in by_method:
        return by_method[request.method]
    return "billing:read" if request.method in SAFE_METHODS else "billing:write"


class HasScope(permissions.BasePermission):
    message = "This API key lacks the scope this call needs."

    def has_permission(self, request, view):
        api_key = request.auth
        if api_key is None or not hasattr(api_key, "scopes"):
            raise exceptions.NotAuthenticated()
        scope = required_scope(request, view)
        if api_key.has_scope(scope):
            return True
        self.message = f"This API key lacks the '{scope}' scope."
        return False


import billing_site.openapi  # noqa: E402,F401  (registers the OpenAPI scheme for this authentication class)
