"""Query budget of the ingestion hot path (a regression guard for "set-based, no per-event queries").

Warm path (API key cached, the month's partition known to the process): a single event costs
the lookup and the insert (two prepared statements), a batch the same two whatever its size and
however many customers it spans; rejections add one bulk insert of dead letters; a duplicate is
answered by the lookup alone. Tests run inside a transaction, so the insert runs in a savepoint
(SAVEPOINT/RELEASE, not counted here: in production the request is in autocommit and has none)."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.customers.factories import CustomerFactory
from tests.usage.helpers import event
from usage.models import DeadLetterEvent, UsageEvent

URL = "/api/v1/events/"
BATCH_URL = "/api/v1/events/batch/"


def _post(client, body, url):
    with CaptureQueriesContext(connection) as captured:
        response = client.post(url, data=json.dumps(body), content_type="application/json")
    statements = [q["sql"] for q in captured.captured_queries
                  if not (q["sql"] or "").startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]
    return response, statements


@pytest.fixture
def customers(make_metric, make_subscription):
    calls, gb = make_metric("api_calls"), make_metric("storage_gb", "sum", "gb")
    return [make_subscription(calls, gb, customer=CustomerFactory(external_id=f"qc{n}"), external_id=f"qs{n}")
            for n in range(20)]


def _batch(prefix, size, n_customers=20):
    return {"events": [event(f"{prefix}{i}", customer=f"qc{i % n_customers}",
                             **({"code": "storage_gb", "properties": {"gb": "1.5"}} if i % 2 else {}))
                       for i in range(size)]}


@pytest.mark.django_db
def test_single_event_costs_two_statements(usage_api, customers):
    assert _post(usage_api, event("warm", customer="qc0"), URL)[0].status_code == 202  # key cache, partition
    response, statements = _post(usage_api, event("t1", customer="qc1"), URL)
    assert response.status_code == 202
    assert len(statements) == 2, statements  # usage_ingest_lookup, usage_ingest_insert


@pytest.mark.django_db
def test_duplicate_single_event_costs_the_lookup_only(usage_api, customers):
    assert _post(usage_api, event("t1", customer="qc0"), URL)[0].status_code == 202
    response, statements = _post(usage_api, event("t1", customer="qc0"), URL)
    assert response.status_code == 200
    assert len(statements) == 1, statements


@pytest.mark.django_db
def test_rejected_single_event_adds_its_dead_letter(usage_api, customers):
    assert _post(usage_api, event("warm", customer="qc0"), URL)[0].status_code == 202
    response, statements = _post(usage_api, event("t1", customer="qc0", code="nope"), URL)
    assert response.status_code == 400
    assert len(statements) == 2, statements  # lookup, dead letter
    assert DeadLetterEvent.objects.get().reason == "unknown_metric"


@pytest.mark.django_db
@pytest.mark.parametrize("size", [10, 1000])
def test_batch_costs_two_statements_whatever_its_size(usage_api, customers, size):
    assert _post(usage_api, event("warm", customer="qc0"), URL)[0].status_code == 202
    response, statements = _post(usage_api, _batch("b", size), BATCH_URL)
    assert response.status_code == 200
    assert response.json()["accepted"] == size
    assert len(statements) == 2, statements
    assert UsageEvent.objects.filter(transaction_id__startswith="b").count() == size


@pytest.mark.django_db
def test_batch_with_rejections_adds_one_bulk_insert_of_dead_letters(usage_api, customers):
    assert _post(usage_api, event("warm", customer="qc0"), URL)[0].status_code == 202
    body = _batch("b", 300)
    for i in range(0, 300, 3):
        body["events"][i]["customer"] = "nobody"
    response, statements = _post(usage_api, body, BATCH_URL)
    assert response.status_code == 200
    assert response.json()["accepted"] == 200 and len(response.json()["rejected"]) == 100
    assert len(statements) == 3, statements  # lookup, insert, dead letters
    assert DeadLetterEvent.objects.count() == 100
