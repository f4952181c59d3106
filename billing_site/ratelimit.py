"""Per-API-key rate limits on Redis (DESIGN.md §14): a fixed-window counter per key and window.

`API_RATE_LIMIT` (default "6000/min", 100 a second) applies to every API call made with a key; ingestion calls (those
that need the `usage:write` scope: POST /events/ and /events/batch/) count against their own, higher
`API_RATE_LIMIT_INGESTION` (default "120000/min", 2,000 a second). Formats: "N/s", "N/min", "N/hour"; "0" or "" turns a
limit off. Past the limit DRF answers 429 in the error shape (code `throttled`) with `Retry-After`
(seconds until the window ends). When Redis is unreachable the limit is not enforced (logged): losing
the limiter must not take the API down."""

from __future__ import annotations

import logging
import math
import time
from functools import lru_cache

import redis
from django.conf import settings
from rest_framework.throttling import BaseThrottle

from billing_site.api_auth import required_scope
from common.redis import redis_client

logger = logging.getLogger(__name__)

UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


def parse_rate(rate: str | None) -> tuple[int, int] | None:
    """"100/min" → (100, 60); None, "" or "0" → None (no limit)."""
    if not rate or str(rate).strip() in {"0", "none", "off"}:
        return None
    count, _, unit = str(rate).partition("/")
    return int(count), UNITS[(unit or "s").strip().lower()]


# INCR and, for the window's first call, EXPIRE, as one atomic script: one command and one reply per
# request instead of a MULTI/INCR/EXPIRE/EXEC transaction (four commands, four replies) on every API
# call, single-event posts included. A window's key is never reused, so its TTL is set once. With a
# second key, the script also returns that key's value: a GET the caller would otherwise send on its
# own round trip (the single-event fast path's API-key-set version).
_COUNT_LUA = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if KEYS[2] then return {count, redis.call('GET', KEYS[2])} end
return {count}
"""


@lru_cache(maxsize=1)
def _count_script():
    """Sent by its SHA (EVALSHA); redis-py loads it again if the server lost it (a restart)."""
    return redis_client().register_script(_COUNT_LUA)


def rate_limit_wait_and_get(api_key, *, ingestion: bool, key: str | None = None) -> tuple[int | None, bytes | None]:
    """Count one call made with `api_key` against its limit: (None while within it, else the seconds until the
    window ends; the value of the Redis key `key`, read in the same round trip). Raises redis.RedisError:
    the caller decides what an unreachable Redis means for the value it wanted."""
    rate = parse_rate(getattr(settings, "API_RATE_LIMIT_INGESTION" if ingestion else "API_RATE_LIMIT", None))
    if rate is None:
        return None, redis_client().get(key) if key else None
    limit, window = rate
    now = time.time()
    window_index = int(now // window)
    counter = f"ratelimit:{'ingestion' if ingestion else 'api'}:{api_key.pk}:{window}:{window_index}"
    count, *read = _count_script()(keys=[counter, key] if key else [counter], args=[window + 1])
    value = read[0] if read else None
    if count <= limit:
        return None, value
    return max(1, math.ceil((window_index + 1) * window - now)), value


def rate_limit_wait(api_key, *, ingestion: bool) -> int | None:
    """rate_limit_wait_and_get's wait alone; an unreachable Redis lets the call through (logged)."""
    try:
        return rate_limit_wait_and_get(api_key, ingestion=ingestion)[0]
    except redis.RedisError:
        logger.warning("rate limiter: Redis unreachable, request let through", exc_info=True)
        return None


class ApiKeyRateThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        api_key = request.auth
        if api_key is None or not hasattr(api_key, "scopes"):
            return True
        self._wait = rate_limit_wait(api_key, ingestion=required_scope(request, view) == "usage:write")
        return self._wait is None

    def wait(self) -> float | None:
        return getattr(self, "_wait", None)
