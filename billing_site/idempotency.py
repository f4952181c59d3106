"""`Idempotency-Key` on every POST of the API, with Stripe's semantics (API.md, DESIGN.md §14).

A POST under /api/ carrying `Idempotency-Key: <1–255 printable chars>`:
- is scoped to the API key that sent it (a request without a valid key passes through and DRF answers 401);
- while a request with that key runs, a second one gets 409 `idempotency_key_in_use`. The guard is a
  PostgreSQL session advisory lock on (api key, key), taken with `pg_try_advisory_lock` before the view
  runs and released after the response is stored. A crashed worker's connection ends, and with it the lock,
  so a key is never stuck "in use";
- a response below 400 is stored (status, content type, body) in `common.IdempotencyKey`; the same key with
  the same method, path and body replays it byte for byte with `Idempotent-Replayed: true` and runs nothing;
  the same key with another method, path or body is 409 `idempotency_key_reused`;
- a 4xx (failed validation, auth, conflict) or 5xx is not stored: the client may fix the request and retry
  with the same key;
- rows are kept IDEMPOTENCY_KEY_TTL_HOURS (default 24) and purged by the `common.purge_idempotency_keys`
  beat job; an expired row still present is ignored and replaced.
"""

from __future__ import annotations

import hashlib

from django.db import DatabaseError, connection
from django.http import HttpResponse, JsonResponse
from django.utils import timezone

from common.errors import error_body
from common.idempotency import ttl
from common.models import IdempotencyKey
from customers.services import api_key_authenticate

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_LENGTH = 255


def _error(status: int, code: str, message: str, field: bool = False) -> JsonResponse:
    return JsonResponse(error_body(code, message, {HEADER: [message]} if field else None), status=status)


def _api_key(request):
    parts = request.headers.get("Authorization", "").split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    return api_key_authenticate(raw_key=parts[1])


def _lock_id(api_key_id: int, key: str) -> int:
    digest = hashlib.blake2b(f"idempotency:{api_key_id}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _advisory(sql: str, lock_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(sql, [lock_id])
        return bool(cursor.fetchone()[0])


class IdempotencyKeyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        key = request.headers.get(HEADER)
        if key is None or request.method != "POST" or not request.path.startswith("/api/"):
            return self.get_response(request)
        if not 1 <= len(key) <= MAX_LENGTH or not key.isprintable():
            return _error(400, "invalid", f"{HEADER} must be 1 to {MAX_LENGTH} printable characters.", field=True)
        api_key = _api_key(request)
        if api_key is None:
            return self.get_response(request)
        return self._handle(request, api_key_id=api_key.pk, key=key)

    def _handle(self, request, *, api_key_id: int, key: str):
        path = request.get_full_path()[:2000]
        body_hash = hashlib.sha256(request.body).hexdigest()
        lock_id = _lock_id(api_key_id, key)
        if not _advisory("SELECT pg_try_advisory_lock(%s)", lock_id):
            return _error(409, "idempotency_key_in_use",
                          "A request with this Idempotency-Key is still being processed; retry later.")
        try:
            stored = IdempotencyKey.objects.filter(api_key_id=api_key_id, key=key).first()
            if stored is not None and stored.created_at < timezone.now() - ttl():
                stored.delete()
                stored = None
            if stored is not None:
                if (stored.request_method, stored.request_path, stored.request_hash) != (request.method, path, body_hash):
                    return _error(409, "idempotency_key_reused",
                                  "This Idempotency-Key was used with another method, path or body.")
                response = HttpResponse(bytes(stored.response_body), status=stored.response_status,
                                        content_type=stored.response_content_type or None)
                response[REPLAYED_HEADER] = "true"
                return response
            response = self.get_response(request)
            if response.status_code < 400 and not response.streaming:
                IdempotencyKey.objects.create(
                    api_key_id=api_key_id, key=key, request_method=request.method, request_path=path,
                    request_hash=body_hash, response_status=response.status_code,
                    response_content_type=response.get("Content-Type", ""), response_body=response.content)
            return response
        finally:
            try:
                _advisory("SELECT pg_advisory_unlock(%s)", lock_id)
            except DatabaseError:  # the connection died: its session, and the lock with it, are gone
                connection.close()



def document_idempotency_header(result, generator, request, public):
    """drf-spectacular postprocessing hook: every POST of the API documents the optional Idempotency-Key
    header and its 409 answers."""
    parameter = {"in": "header", "name": HEADER, "required": False,
                 "description": "Makes a retried POST safe: the same key with the same request replays the first "
                                "answer (`Idempotent-Replayed: true`); kept 24 h per API key.",
                 "schema": {"type": "string", "minLength": 1, "maxLength": MAX_LENGTH, "pattern": "^[\\x20-\\x7e]+$"}}
    for path_item in (result.get("paths") or {}).values():
        operation = path_item.get("post")
        if operation is None:
            continue
        parameters = operation.setdefault("parameters", [])
        if not any(p.get("name") == HEADER and p.get("in") == "header" for p in parameters):
            parameters.append(parameter)
        operation.setdefault("responses", {}).setdefault("409", {
            "description": "Conflict (including `idempotency_key_reused` and `idempotency_key_in_use`)"})
    return result
