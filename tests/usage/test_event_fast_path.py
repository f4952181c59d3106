"""POST /api/v1/events/ served by billing_site.event_fast_path must answer exactly as EventView does.

Each case runs twice against the same starting state (a savepoint rolled back in between): once
through the view (EVENT_FAST_PATH off) and once with the fast path on. Status, body bytes and every
header must match, and so must what was stored: events, dead letters, the API key's last use.
"""

import json

import pytest
from django.db import transaction
from django.test import override_settings
from redis.connection import AbstractConnection as RedisConnection
from rest_framework.test import APIClient

from billing_site.ratelimit import redis_client
from customers.models import ApiKey
from customers.services import _key_cache_clear, api_key_authenticate, api_key_create, api_key_revoke
from tests.usage.helpers import event
from usage.api import EventView
from usage.models import DeadLetterEvent, UsageEvent
from usage.partitioning import forget_known_partitions

URL = "/api/v1/events/"
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clean_counters():
    for key in redis_client().scan_iter("ratelimit:*"):
        redis_client().delete(key)


def _client(scopes=("usage:write",), *, warm=True) -> APIClient:
    """A client whose key this process has authenticated before (warm), as a running integration's is."""
    _, raw = api_key_create(name="fast-path", scopes=list(scopes))
    if warm:
        api_key_authenticate(raw_key=raw)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def _post(client, body, content_type="application/json", path=URL, **extra):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    response = client.post(path, data=data, content_type=content_type, **extra)
    return response.status_code, response.content, sorted(response.headers.items())


def _stored() -> dict:
    return {
        "events": sorted(UsageEvent.objects.values_list("transaction_id", "subscription_id", "value", "is_late")),
        "dead_letters": sorted(DeadLetterEvent.objects.values_list("source", "reason", "transaction_id", "raw_body",
                                                                   "message", "fields")),
        "keys_used": sorted(last_used is not None for last_used in ApiKey.objects.values_list("last_used_at", flat=True)),
    }


def _both(case) -> list:
    """case(): the answers a sequence of calls got; run through the view, then through the fast path."""
    outcomes = []
    for fast in (False, True):
        with override_settings(EVENT_FAST_PATH=fast), transaction.atomic():
            answers = case()
            outcomes.append((answers, _stored()))
            transaction.set_rollback(True)
        _key_cache_clear()
        forget_known_partitions()
        for key in redis_client().scan_iter("ratelimit:*"):
            redis_client().delete(key)
    return outcomes


def _same(case):
    view, fast = _both(case)
    assert fast == view
    return view[0]


CASES = {
    "accepted": lambda: [_post(_client(), event("t1"))],
    "accepted, with a charset and Accept: application/json": lambda: [
        _post(_client(), event("t1"), content_type="application/json; charset=utf-8", HTTP_ACCEPT="application/json")],
    "duplicate": lambda: [_post(c := _client(), event("t1")), _post(c, event("t1"))],
    "conflict": lambda: [_post(c := _client(), event("t1")), _post(c, event("t1", code="storage_gb",
                                                                         properties={"gb": "2"}))],
    "unknown metric": lambda: [_post(_client(), event("t1", code="nope"))],
    "unknown customer": lambda: [_post(_client(), event("t1", customer="nobody"))],
    "bad timestamp": lambda: [_post(_client(), event("t1", timestamp="yesterday"))],
    "negative sum value": lambda: [_post(_client(), event("t1", code="storage_gb", properties={"gb": "-1"}))],
    "a JSON list": lambda: [_post(_client(), [event("t1")])],
    "not JSON": lambda: [_post(_client(), '{"transaction_id": "t1",')],
    "an empty body": lambda: [_post(_client(), "")],
    "a JSON string": lambda: [_post(_client(), '"t1"')],
    "NUL in a property": lambda: [_post(_client(), event("t1", properties={"note": "a\u0000b"}))],
    "no credentials": lambda: [_post(APIClient(), event("t1"))],
    "unknown key": lambda: [_post(APIClient(HTTP_AUTHORIZATION="Bearer nope"), event("t1"))],
    "not a Bearer header": lambda: [_post(APIClient(HTTP_AUTHORIZATION="Basic abc def"), event("t1"))],
    "key without usage:write": lambda: [_post(_client(["billing:read"]), event("t1"))],
    "text/plain": lambda: [_post(_client(), json.dumps(event("t1")), content_type="text/plain")],
    "latin-1": lambda: [_post(_client(), json.dumps(event("t1")), content_type="application/json; charset=latin-1")],
    "Accept: text/html": lambda: [_post(_client(), event("t1"), HTTP_ACCEPT="text/html")],
    "a query string": lambda: [_post(_client(), event("t1"), path=URL + "?format=json")],
    "Idempotency-Key replayed": lambda: [_post(c := _client(), event("t1"), HTTP_IDEMPOTENCY_KEY="k1"),
                                         _post(c, event("t1"), HTTP_IDEMPOTENCY_KEY="k1")],
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_fast_path_answers_as_the_view_does(name, api_calls):
    answers = _same(CASES[name])
    assert answers and all(status < 500 for status, _, _ in answers)


def test_the_reference_answers_are_the_api_contract(api_calls):
    """What both paths were held to, for the main cases (so that a change to both cannot pass unseen)."""
    accepted, = _same(CASES["accepted"])
    assert accepted[:2] == (202, b'{"status":"accepted"}')
    assert ("Allow", "POST, OPTIONS") in accepted[2] and ("X-Frame-Options", "DENY") in accepted[2]
    first, again = _same(CASES["duplicate"])
    assert again[:2] == (200, b'{"status":"duplicate"}')
    _, conflict = _same(CASES["conflict"])
    assert conflict[0] == 409 and json.loads(conflict[1])["error"]["code"] == "transaction_id_conflict"
    rejected, = _same(CASES["unknown metric"])
    assert rejected[0] == 400 and json.loads(rejected[1])["error"]["fields"] == {"code": ["unknown"]}
    malformed, = _same(CASES["not JSON"])
    assert malformed[0] == 400 and json.loads(malformed[1])["error"]["code"] == "malformed_body"
    assert [_same(CASES[n])[0][0] for n in ("no credentials", "key without usage:write", "text/plain", "Accept: text/html")] \
        == [401, 403, 415, 406]
    replayed = _same(CASES["Idempotency-Key replayed"])[1]
    assert ("Idempotent-Replayed", "true") in replayed[2]


def test_the_fast_path_serves_without_the_view(api_calls, monkeypatch):
    def tripwire(self, request):
        raise AssertionError("EventView.post reached")

    monkeypatch.setattr(EventView, "post", tripwire)
    assert _post(_client(), event("t1"))[:2] == (202, b'{"status":"accepted"}')
    assert _post(_client(), event("t2", code="nope"))[0] == 400
    assert DeadLetterEvent.objects.get().transaction_id == "t2"
    with pytest.raises(AssertionError, match="EventView.post reached"):
        _post(_client(), "not json")  # what it does not own goes to the view


def test_a_key_the_process_has_not_seen_goes_to_the_view_which_caches_it(api_calls, monkeypatch):
    client = _client(warm=False)
    view_post = EventView.post
    served_by_view = []

    def spy(self, request):
        served_by_view.append(json.loads(request._request.body)["transaction_id"])
        return view_post(self, request)

    monkeypatch.setattr(EventView, "post", spy)
    assert [_post(client, event(t))[0] for t in ("t1", "t2", "t3")] == [202, 202, 202]
    assert served_by_view == ["t1"]
    assert UsageEvent.objects.count() == 3


def test_a_key_revoked_while_cached_is_refused_at_once(api_calls, django_capture_on_commit_callbacks):
    _, raw = api_key_create(name="soon revoked", scopes=["usage:write"])
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert _post(client, event("t1"))[0] == 202
    assert _post(client, event("t2"))[0] == 202  # served from the process's key cache
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(api_key=ApiKey.objects.get(name="soon revoked"))
    _key_cache_clear()  # only this process's own revocation clears it at once; others learn from the version
    api_key_authenticate(raw_key=raw, version_reply=b"stale")  # a cache entry read under the old version
    status, content, _ = _post(client, event("t3"))
    assert status == 401 and json.loads(content)["error"]["code"] == "authentication_failed"
    assert sorted(UsageEvent.objects.values_list("transaction_id", flat=True)) == ["t1", "t2"]


def test_a_served_post_makes_one_redis_round_trip(api_calls, monkeypatch):
    """The count and the key-set version travel together (commandstats cannot tell: it counts a script's own calls)."""
    client = _client()
    _post(client, event("warm"))
    sent = []
    send = RedisConnection.send_packed_command

    def counting(self, command, *args, **kwargs):
        sent.append(command)
        return send(self, command, *args, **kwargs)

    monkeypatch.setattr(RedisConnection, "send_packed_command", counting)
    assert [_post(client, event(f"t{i}"))[0] for i in range(5)] == [202] * 5
    assert len(sent) == 5


@override_settings(API_RATE_LIMIT_INGESTION="3/hour")
def test_every_call_counts_once_against_the_rate_limit(api_calls):
    """Accepted, rejected and malformed calls each count once, on either path: the fourth call is the first refused."""

    def calls():
        client = _client()
        return [_post(client, event("t1")), _post(client, event("t2", code="nope")), _post(client, "{"),
                _post(client, event("t3")), _post(client, event("t4"))]

    answers = _same(calls)
    assert [status for status, _, _ in answers] == [202, 400, 400, 429, 429]
    assert json.loads(answers[3][1])["error"]["code"] == "throttled"
