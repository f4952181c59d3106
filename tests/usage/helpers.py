"""Event bodies for the usage tests."""


def event(tid: str, **overrides) -> dict:
    body = {"transaction_id": tid, "customer": "acme", "code": "api_calls", "timestamp": "2026-03-10T12:00:00Z",
            "properties": {}}
    body.update(overrides)
    return body
