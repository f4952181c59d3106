"""Login throttle for the admin and the back office (Redis, so it holds across processes).

After LOGIN_THROTTLE_FAILURES failed logins for one username, or 4× that from one client address,
within LOGIN_THROTTLE_WINDOW seconds, further login POSTs answer 429 with `Retry-After` until the
window of the first failure ends; a successful login clears the username's count. Redis down →
logins are not throttled (the password check still applies)."""

from __future__ import annotations

import logging
from functools import wraps

from django.conf import settings
from django.http import HttpResponse

from common.redis import RedisError, redis_client

logger = logging.getLogger(__name__)
PREFIX = "ledgerline:login-fail:"


def _limits() -> tuple[int, int]:
    return int(getattr(settings, "LOGIN_THROTTLE_FAILURES", 5)), int(getattr(settings, "LOGIN_THROTTLE_WINDOW", 900))


def _keys(request) -> list[tuple[str, int]]:
    failures, _ = _limits()
    username = (request.POST.get("username") or "").strip().lower()[:150]
    address = request.META.get("REMOTE_ADDR", "")
    return [(f"{PREFIX}user:{username}", failures), (f"{PREFIX}addr:{address}", failures * 4)]


def login_locked_for(request) -> int:
    """Seconds until this login POST may be tried again; 0 when it may be tried now."""
    try:
        client = redis_client()
        for key, limit in _keys(request):
            if int(client.get(key) or 0) >= limit:
                return max(int(client.ttl(key)), 1)
    except RedisError:
        logger.warning("login throttle: Redis unavailable", exc_info=True)
    return 0


def login_failed(request) -> None:
    _, window = _limits()
    try:
        pipe = redis_client().pipeline()
        for key, _limit in _keys(request):
            pipe.incr(key)
            pipe.expire(key, window, nx=True)
        pipe.execute()
    except RedisError:
        logger.warning("login throttle: Redis unavailable", exc_info=True)


def login_succeeded(request) -> None:
    try:
        redis_client().delete(_keys(request)[0][0])
    except RedisError:
        logger.warning("login throttle: Redis unavailable", exc_info=True)


def login_throttled(view):
    """Wraps a login view (Django's LoginView or the admin's `login`): a POST that does not end
    in a redirect is a failed attempt."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method != "POST":
            return view(request, *args, **kwargs)
        wait = login_locked_for(request)
        if wait:
            response = HttpResponse(f"Too many failed logins. Try again in {wait} seconds.", status=429,
                                    content_type="text/plain")
            response["Retry-After"] = str(wait)
            return response
        response = view(request, *args, **kwargs)
        if response.status_code in (301, 302, 303):
            login_succeeded(request)
        else:
            login_failed(request)
        return response

    return wrapper
