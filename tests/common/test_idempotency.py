"""Idempotency-Key on POST (API.md): replay, reuse, in use, 4xx not stored, scope, lifetime."""

from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from billing_site.idempotency import _lock_id
from common.idempotency import idempotency_keys_purge
from common.models import IdempotencyKey
from customers.models import ApiKey, Customer

pytestmark = pytest.mark.django_db

BODY = {"external_id": "acme", "name": "Acme", "currency": "USD"}


def _post(api, body=BODY, key="key-1", path="/api/v1/customers/"):
    return api.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_same_key_same_request_replays_the_first_response(billing_api):
    first = _post(billing_api)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first
    again = _post(billing_api)
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == first.content and again["Content-Type"] == "application/json"
    assert Customer.objects.count() == 1
    # Without a key the same body really runs again (and conflicts).
    assert billing_api.post("/api/v1/customers/", BODY, format="json").status_code == 409


def test_same_key_other_body_or_path_is_409_reused(billing_api):
    assert _post(billing_api).status_code == 201
    for response in (_post(billing_api, body={**BODY, "name": "Acme Inc"}),
                     _post(billing_api, path="/api/v1/billable_metrics/")):
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert Customer.objects.get().name == "Acme"


def test_a_4xx_is_not_stored_so_the_key_can_be_retried(billing_api):
    bad = _post(billing_api, body={**BODY, "currency": "XXX1"})
    assert bad.status_code == 400
    assert IdempotencyKey.objects.count() == 0
    fixed = _post(billing_api)
    assert fixed.status_code == 201 and "Idempotent-Replayed" not in fixed
    assert IdempotencyKey.objects.get().response_status == 201


def test_keys_are_scoped_to_the_api_key(api_client_factory):
    one, two = api_client_factory(["billing:write"]), api_client_factory(["billing:write"])
    assert _post(one).status_code == 201
    other = _post(two)  # not a replay: it runs, and the customer exists
    assert other.status_code == 409 and other.json()["error"]["code"] != "idempotency_key_reused"
    assert "Idempotent-Replayed" not in other


def test_key_length_and_content(billing_api):
    for key in ("", "k" * 256, "tab\there"):
        response = _post(billing_api, key=key)
        assert response.status_code == 400, key
        assert list(response.json()["error"]["fields"]) == ["Idempotency-Key"]
    assert _post(billing_api, key="k" * 255).status_code == 201
    assert Customer.objects.count() == 1


def test_in_use_while_another_connection_holds_the_key(billing_api):
    assert _post(billing_api, body={**BODY, "external_id": "warmup"}, key="other").status_code == 201
    api_key_id = IdempotencyKey.objects.get().api_key_id
    holder = connections.create_connection("default")  # a second, real connection: "the first request"
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [_lock_id(api_key_id, "key-1")])
        busy = _post(billing_api)
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "idempotency_key_in_use"
        assert not Customer.objects.filter(external_id="acme").exists()
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_lock_id(api_key_id, "key-1")])
    finally:
        holder.close()
    assert _post(billing_api).status_code == 201


def test_kept_24_hours_then_purged(billing_api):
    assert _post(billing_api).status_code == 201
    assert _post(billing_api, body={**BODY, "external_id": "beta"}, key="key-2").status_code == 201
    IdempotencyKey.objects.filter(key="key-1").update(created_at=timezone.now() - timedelta(hours=24, seconds=1))
    IdempotencyKey.objects.filter(key="key-2").update(created_at=timezone.now() - timedelta(hours=23, minutes=59))
    assert idempotency_keys_purge() == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["key-2"]
    assert _post(billing_api, body={**BODY, "external_id": "beta"}, key="key-2")["Idempotent-Replayed"] == "true"


def test_an_expired_key_not_yet_purged_is_not_replayed(billing_api):
    assert _post(billing_api).status_code == 201
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=25))
    response = _post(billing_api)
    assert response.status_code == 409 and response.json()["error"]["code"] == "duplicate_external_id"  # ran again


def test_get_and_unauthenticated_requests_pass_through(billing_api, anon_api):
    response = billing_api.get("/api/v1/invoices/", HTTP_IDEMPOTENCY_KEY="x" * 300)
    assert response.status_code == 200
    assert anon_api.post("/api/v1/customers/", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 401
    assert IdempotencyKey.objects.count() == 0
    assert ApiKey.objects.count() == 1


def test_the_schema_documents_the_header_on_every_post(anon_api):
    import yaml

    schema = yaml.safe_load(anon_api.get("/api/v1/schema/").content)
    posts = [(path, item["post"]) for path, item in schema["paths"].items() if "post" in item]
    assert len(posts) > 10
    for path, operation in posts:
        names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
        assert "Idempotency-Key" in names, path
    assert not any(p["name"] == "Idempotency-Key" for p in schema["paths"]["/api/v1/invoices/"]["get"].get("parameters", []))
