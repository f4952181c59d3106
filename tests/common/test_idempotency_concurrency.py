"""Twenty parallel requests with one Idempotency-Key against a live server (real threads, real
connections): exactly one resource."""

import json
import urllib.error
import urllib.request

import pytest

from customers.models import Customer
from customers.services import api_key_create
from tests.race import race

pytestmark = pytest.mark.django_db(transaction=True)


def _post(url, raw_key, body, idem_key):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {raw_key}", "Content-Type": "application/json", "Idempotency-Key": idem_key})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers.get("Idempotent-Replayed"), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Idempotent-Replayed"), json.loads(exc.read())


def test_twenty_parallel_requests_with_one_key_create_one_resource(live_server):
    _, raw = api_key_create(name="parallel", scopes=["billing:write"])
    url = live_server.url + "/api/v1/customers/"
    body = {"external_id": "acme", "name": "Acme", "currency": "USD"}
    results = race(*[lambda: _post(url, raw, body, "one-key")] * 20, join_timeout=60).returned
    assert len(results) == 20
    assert Customer.objects.filter(external_id="acme").count() == 1
    originals = [r for r in results if r[0] == 201 and r[1] is None]
    replays = [r for r in results if r[0] == 201 and r[1] == "true"]
    in_use = [r for r in results if r[0] == 409 and r[2]["error"]["code"] == "idempotency_key_in_use"]
    assert len(originals) == 1
    assert len(originals) + len(replays) + len(in_use) == 20, results
    assert all(r[2] == originals[0][2] for r in replays)
    # Afterwards the key replays.
    status, replayed, data = _post(url, raw, body, "one-key")
    assert (status, replayed, data) == (201, "true", originals[0][2])
