"""One Redis client per process for the app's own small shared state (login throttle, API key
cache version), on `REDIS_URL` like Celery. Short timeouts: callers treat Redis errors as "unknown"
and fall back to the database or to allowing the request, never to a 500."""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings

RedisError = redis.RedisError


@lru_cache(maxsize=1)
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=0.5, socket_timeout=0.5)
