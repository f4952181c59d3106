"""Per-API-key rate limits on Redis: 429 in the error shape with Retry-After; ingestion has its own limit."""

import pytest
from django.test import override_settings

from billing_site.ratelimit import parse_rate, redis_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clean_counters():
    client = redis_client()
    for key in client.scan_iter("ratelimit:*"):
        client.delete(key)
    yield


def test_parse_rate():
    assert parse_rate("100/min") == (100, 60)
    assert parse_rate("5/s") == (5, 1)
    assert parse_rate("7/hour") == (7, 3600)
    assert parse_rate("0") is None and parse_rate("") is None and parse_rate(None) is None


@override_settings(API_RATE_LIMIT="3/hour", API_RATE_LIMIT_INGESTION="5/hour")
def test_the_limit_is_per_key_with_retry_after(api_client_factory):
    one, two = api_client_factory(["billing:read"]), api_client_factory(["billing:read"])
    assert [one.get("/api/v1/invoices/").status_code for _ in range(3)] == [200, 200, 200]
    limited = one.get("/api/v1/invoices/")
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "throttled"
    assert 1 <= int(limited["Retry-After"]) <= 3600
    assert two.get("/api/v1/invoices/").status_code == 200  # another key has its own budget


@override_settings(API_RATE_LIMIT="1/hour", API_RATE_LIMIT_INGESTION="4/hour")
def test_ingestion_has_its_own_limit(api_client_factory):
    client = api_client_factory(["usage:write", "billing:read"])
    event = {"transaction_id": "t", "customer": "nobody", "code": "calls", "timestamp": "2026-01-01T00:00:00Z"}
    statuses = [client.post("/api/v1/events/", {**event, "transaction_id": f"t{i}"}, format="json").status_code
                for i in range(5)]
    assert 429 not in statuses[:4] and statuses[4] == 429
    assert client.get("/api/v1/invoices/").status_code == 200  # the general budget is untouched by ingestion
    assert client.get("/api/v1/invoices/").status_code == 429


@override_settings(API_RATE_LIMIT="0")
def test_zero_turns_the_limit_off(billing_api):
    assert {billing_api.get("/api/v1/invoices/").status_code for _ in range(5)} == {200}


@override_settings(API_RATE_LIMIT="100/min")
def test_a_window_counter_counts_every_call_and_expires_with_its_window(api_client_factory):
    client = api_client_factory(["billing:read"])
    for _ in range(3):
        assert client.get("/api/v1/invoices/").status_code == 200
    (key,) = list(redis_client().scan_iter("ratelimit:api:*"))
    assert int(redis_client().get(key)) == 3
    assert 0 < redis_client().ttl(key) <= 61  # set once, on the window's first call


@override_settings(API_RATE_LIMIT="2/hour")
def test_the_counter_script_is_reloaded_after_redis_forgets_it(api_client_factory):
    client = api_client_factory(["billing:read"])
    assert client.get("/api/v1/invoices/").status_code == 200
    redis_client().script_flush()  # as after a Redis restart
    assert client.get("/api/v1/invoices/").status_code == 200
    assert client.get("/api/v1/invoices/").status_code == 429
