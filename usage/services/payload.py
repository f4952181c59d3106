"""Event payloads as data: exact JSON text (Decimals keep their digits) and the payload hash that
tells a duplicate from a conflict (usage/README.md, "Payload hash")."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any


# Encoders built once (json.dumps with options builds one per call).
_COMPACT = json.JSONEncoder(separators=(",", ":"))
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def dumps_exact(value: Any) -> str:
    """JSON text in which Decimals are numbers with their exact digits (json.dumps would need floats)."""
    if type(value) is dict:
        try:  # the usual properties (strings, ints, no Decimal): one C call
            return _COMPACT.encode(value)
        except TypeError:
            pass
    return _dumps_exact(value)


def _dumps_exact(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else json.dumps(str(value))
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_dumps_exact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_dumps_exact(v) for v in value) + "]"
    return json.dumps(value)


def _canonical(value: Any) -> Any:
    """Stable form for hashing: numbers as strings (a JSON number and the same numeric string are
    the same payload, API.md reads both as the same Decimal: 5 ≡ "5", 5.5 ≡ "5.5")."""
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return value
    if kind is dict:
        return {k if type(k) is str else str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, Decimal) or (isinstance(value, int) and not isinstance(value, bool)):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def payload_hash(event: dict, timestamp: datetime | None) -> bytes:
    """SHA-256 over the fields that define an event. The timestamp is compared as an instant
    (the same moment written with another offset is the same payload)."""
    body = {
        "transaction_id": event.get("transaction_id"),
        "customer": event.get("customer"),
        "subscription": event.get("subscription"),
        "code": event.get("code"),
        "timestamp": timestamp.astimezone(timezone.utc).isoformat() if timestamp else event.get("timestamp"),
        "properties": event.get("properties") or {},
    }
    text = _CANONICAL.encode(_canonical(body))
    return hashlib.sha256(text.encode()).digest()
