"""Middleware that serves the browser pages (admin, back office) and is skipped under /api/.

The API authenticates every call with a Bearer key (billing_site.api_auth) and has no session,
login, flash messages, htmx or form history to track; skipping those layers (with the one-script rate
limiter) takes about 12 % off the Django process's CPU per single-event post (README). Each class
here is the library's own middleware, passed straight through for /api/ paths and unchanged
everywhere else; being subclasses, Django's checks (admin.E408–E410) still recognise them.

CSRF, security headers, X-Frame-Options, CommonMiddleware and WhiteNoise stay on every path."""

from __future__ import annotations

from django.contrib.auth.middleware import AuthenticationMiddleware as _Authentication
from django.contrib.messages.middleware import MessageMiddleware as _Messages
from django.contrib.sessions.middleware import SessionMiddleware as _Sessions
from django_htmx.middleware import HtmxMiddleware as _Htmx
from simple_history.middleware import HistoryRequestMiddleware as _History

API_PREFIX = "/api/"


def _pages_only(base: type) -> type:
    def __call__(self, request):
        if request.path_info.startswith(API_PREFIX):
            return self.get_response(request)
        return base.__call__(self, request)

    return type(base.__name__, (base,), {"__call__": __call__, "__module__": __name__,
                                         "__doc__": f"{base.__module__}.{base.__name__}, not under {API_PREFIX}."})


SessionMiddleware = _pages_only(_Sessions)
AuthenticationMiddleware = _pages_only(_Authentication)
MessageMiddleware = _pages_only(_Messages)
HtmxMiddleware = _pages_only(_Htmx)


def HistoryRequestMiddleware(get_response):  # noqa: N802 — a middleware factory, named as the one it wraps
    """simple_history's request context (it is a factory, not a class), not under /api/."""
    history = _History(get_response)

    def middleware(request):
        if request.path_info.startswith(API_PREFIX):
            return get_response(request)
        return history(request)

    return middleware
