"""Idempotency under concurrency: two threads, each with its own real database connection."""

import json
import threading
import time

import pytest
from django.db import connection, transaction
from rest_framework.test import APIClient

from customers.services import api_key_create
from tests.customers.factories import CustomerFactory
from tests.usage.helpers import event
from usage.models import DeadLetterEvent, UsageEvent, UsageEventKey
from usage.services.ingest import event_ingest

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def setup(make_metric, make_subscription):
    make_subscription(make_metric("api_calls"), customer=CustomerFactory(external_id="acme"), external_id="sub_acme")
    _, raw = api_key_create(name="concurrency", scopes=["usage:write"])
    return raw


def _post_in_thread(raw_key, body, barrier, out, slot):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    try:
        if barrier is not None:
            barrier.wait(timeout=10)
        response = client.post("/api/v1/events/", data=json.dumps(body), content_type="application/json")
        out[slot] = response.status_code
    finally:
        connection.close()


def test_two_simultaneous_posts_of_the_same_event_store_it_once(setup):
    for n in range(15):
        body = event(f"race-{n}")
        out = [None, None]
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=_post_in_thread, args=(setup, body, barrier, out, i)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        assert sorted(out) == [200, 202], out
    assert UsageEvent.objects.count() == 15
    assert UsageEventKey.objects.count() == 15
    assert not DeadLetterEvent.objects.exists()


@pytest.mark.parametrize("same_payload, expected", [(True, 200), (False, 409)])
def test_a_post_waits_for_an_uncommitted_writer_of_the_same_id(setup, same_payload, expected):
    """Thread A has inserted the event but not committed; B's insert waits on the key, then answers
    duplicate (same payload) or conflict (other payload) once A commits."""
    a_inserted, release = threading.Event(), threading.Event()
    errors = []

    def writer_a():
        try:
            with transaction.atomic():
                assert event_ingest(payload=event("held")).status == "accepted"
                a_inserted.set()
                release.wait(timeout=20)
        except Exception as exc:  # pragma: no cover - surfaced below
            errors.append(exc)
        finally:
            connection.close()

    out = [None]
    body = event("held") if same_payload else event("held", timestamp="2026-03-10T12:00:05Z")
    a = threading.Thread(target=writer_a)
    a.start()
    assert a_inserted.wait(timeout=20)
    b = threading.Thread(target=_post_in_thread, args=(setup, body, None, out, 0))
    b.start()
    time.sleep(0.5)
    assert b.is_alive(), "B should be waiting for A's uncommitted key"
    release.set()
    a.join(timeout=20)
    b.join(timeout=20)
    assert not errors
    assert out == [expected]
    assert UsageEvent.objects.filter(transaction_id="held").count() == 1
    assert DeadLetterEvent.objects.filter(reason="transaction_id_conflict").count() == (0 if same_payload else 1)
