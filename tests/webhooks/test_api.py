"""POST/GET/PATCH/DELETE /webhook_endpoints/, deliveries, manual retry, the SSRF guard."""

import pytest
from django.test import override_settings

from webhooks.delivery import webhooks_deliver_due
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.transport import address_refusal, post, url_refusal

pytestmark = pytest.mark.django_db


def test_create_shows_the_secret_once_then_read_update_delete(admin_api, reader_api):
    response = admin_api.post("/api/v1/webhook_endpoints/", {"url": "https://hooks.example.com/ledgerline",
                                                               "description": "ERP"}, format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["secret"].startswith("whsec_") and len(created["secret"]) == 6 + 44
    assert created["events"] == [] and created["enabled"] is True and created["description"] == "ERP"
    assert WebhookEndpoint.objects.get().secret == created["secret"]

    shown = reader_api.get(f"/api/v1/webhook_endpoints/{created['id']}/").json()
    assert "secret" not in shown and shown["url"] == "https://hooks.example.com/ledgerline"
    assert [e["id"] for e in reader_api.get("/api/v1/webhook_endpoints/").json()["results"]] == [created["id"]]

    patched = admin_api.patch(f"/api/v1/webhook_endpoints/{created['id']}/",
                              {"events": ["invoice.finalized", "invoice.paid"], "enabled": False}, format="json")
    assert patched.status_code == 200, patched.content
    assert patched.json()["events"] == ["invoice.finalized", "invoice.paid"] and patched.json()["enabled"] is False
    assert patched.json()["disabled_reason"] == "disabled by a user"

    assert admin_api.delete(f"/api/v1/webhook_endpoints/{created['id']}/").status_code == 204
    assert admin_api.get(f"/api/v1/webhook_endpoints/{created['id']}/").status_code == 404
    assert WebhookEndpoint.objects.count() == 0


def test_bad_input_is_a_400_naming_the_field(admin_api):
    cases = [
        ({"url": "ftp://hooks.example.com/x"}, "url"),
        ({"url": "http://169.254.169.254/latest/meta-data/"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://hooks.example.com/x", "events": ["invoice.exploded"]}, "events.0"),
        ({"url": "https://hooks.example.com/x", "events": "invoice.paid"}, "events"),
        ({}, "url"),
    ]
    for body, field in cases:
        response = admin_api.post("/api/v1/webhook_endpoints/", body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert field in response.json()["error"]["fields"], (body, response.json())
    assert admin_api.get("/api/v1/webhook_endpoints/not-a-uuid/").status_code == 404
    assert admin_api.post("/api/v1/webhook_deliveries/not-a-uuid/retry/").status_code == 404


def test_scopes(billing_api, reader_api):
    body = {"url": "https://hooks.example.com/x"}
    assert reader_api.post("/api/v1/webhook_endpoints/", body, format="json").status_code == 403
    assert billing_api.post("/api/v1/webhook_endpoints/", body, format="json").status_code == 403
    assert reader_api.get("/api/v1/webhook_endpoints/").status_code == 200


def test_deliveries_log_and_manual_retry(admin_api, world, receiver):
    from datetime import datetime, timezone

    receiver.statuses = [500, 500, 200]
    endpoint = admin_api.post("/api/v1/webhook_endpoints/", {"url": receiver.url, "events": ["subscription.created"]},
                              format="json").json()
    world.subscription("sub-1")
    webhooks_deliver_due(as_of=datetime(2030, 1, 1, tzinfo=timezone.utc))
    log = admin_api.get(f"/api/v1/webhook_endpoints/{endpoint['id']}/deliveries/").json()["results"]
    assert len(log) == 1
    entry = log[0]
    assert entry["event_type"] == "subscription.created" and entry["status"] == "pending"
    assert entry["attempt_count"] == 1 and entry["last_status_code"] == 500
    assert entry["event_id"] == receiver.requests[0].headers["webhook-id"]
    assert [(a["status_code"], a["manual"]) for a in entry["attempts"]] == [(500, False)]

    retried = admin_api.post(f"/api/v1/webhook_deliveries/{entry['id']}/retry/")
    assert retried.status_code == 200, retried.content
    assert retried.json()["status"] == "pending" and retried.json()["attempt_count"] == 1  # manual: schedule kept
    retried = admin_api.post(f"/api/v1/webhook_deliveries/{entry['id']}/retry/").json()
    assert retried["status"] == "succeeded" and retried["last_status_code"] == 200
    assert [(a["status_code"], a["manual"]) for a in retried["attempts"]] == [(200, True), (500, True), (500, False)]
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    assert admin_api.get(f"/api/v1/webhook_endpoints/{endpoint['id']}/deliveries/?status=pending").json()["results"] == []


def test_retry_refused_for_a_disabled_endpoint_and_for_readers(admin_api, reader_api, world, receiver):
    endpoint = admin_api.post("/api/v1/webhook_endpoints/", {"url": receiver.url}, format="json").json()
    world.subscription("sub-1")
    delivery = WebhookDelivery.objects.first()
    assert reader_api.post(f"/api/v1/webhook_deliveries/{delivery.pk}/retry/").status_code == 403
    admin_api.patch(f"/api/v1/webhook_endpoints/{endpoint['id']}/", {"enabled": False}, format="json")
    response = admin_api.post(f"/api/v1/webhook_deliveries/{delivery.pk}/retry/")
    assert response.status_code == 409 and response.json()["error"]["code"] == "endpoint_disabled"
    assert WebhookAttempt.objects.count() == 0


@pytest.mark.parametrize("address,refused", [
    ("169.254.169.254", True), ("fe80::1", True), ("::ffff:169.254.169.254", True), ("100.100.100.200", True),
    ("224.0.0.1", True), ("0.0.0.0", True), ("10.1.2.3", True), ("192.168.1.1", True), ("127.0.0.1", True),
    ("::1", True), ("100.64.0.1", True), ("93.184.216.34", False), ("2606:4700::1111", False),
])
def test_address_guard_without_private_targets(address, refused):
    assert (address_refusal(address, allow_private=False) is not None) is refused


def test_private_targets_allowed_by_setting_but_never_link_local():
    assert address_refusal("127.0.0.1", allow_private=True) is None
    assert address_refusal("10.1.2.3", allow_private=True) is None
    assert address_refusal("169.254.169.254", allow_private=True) is not None


@override_settings(WEBHOOKS_ALLOW_PRIVATE_TARGETS=False)
def test_loopback_refused_at_creation_and_at_delivery_without_the_setting(admin_api, receiver):
    for url in (receiver.url, "http://localhost:8080/x", "http://[::1]/x"):
        response = admin_api.post("/api/v1/webhook_endpoints/", {"url": url}, format="json")
        assert response.status_code == 400 and "url" in response.json()["error"]["fields"], url
    assert url_refusal("http://localhost/x", resolve=True) is not None  # a name resolving to loopback
    result = post(receiver.url, body=b"{}", headers={})
    assert result.status_code is None and result.error.startswith("refused:")
    assert receiver.requests == []


def test_redirects_are_not_followed_and_count_as_failures(receiver):
    receiver.statuses = [302]
    result = post(receiver.url, body=b"{}", headers={"webhook-id": "msg_x"})
    assert result.status_code == 302 and not result.ok
    assert len(receiver.requests) == 1 and result.response_excerpt == "receiver says 302"
