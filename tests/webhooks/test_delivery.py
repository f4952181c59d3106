"""The outbox and the delivery sweeper against a real receiver on 127.0.0.1."""

import json
import socket
from datetime import date, datetime, timedelta, timezone
from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from common.audit import audit_bulk_create
from common.models import AuditEvent
from invoicing.billing import billing_run
from invoicing.models import Invoice
from subscriptions.models import Subscription
from subscriptions.services import subscription_cancel
from tests.invoicing.test_concurrency import _subscriptions
from webhooks.delivery import webhooks_deliver_due
from webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent

pytestmark = pytest.mark.django_db

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)  # sweeps run "as of" times after every delivery was written


def _endpoint(api, url, events=None):
    body = {"url": url, "description": "test receiver"}
    if events is not None:
        body["events"] = events
    response = api.post("/api/v1/webhook_endpoints/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_receiver_failing_once_gets_the_same_webhook_id_again_and_the_signature_verifies(admin_api, world, receiver):
    receiver.statuses = [500, 200]
    endpoint = _endpoint(admin_api, receiver.url, ["subscription.created"])
    world.subscription("sub-1")
    delivery = WebhookDelivery.objects.get()
    assert delivery.event.type == "subscription.created" and delivery.status == DeliveryStatus.PENDING

    first = webhooks_deliver_due(as_of=T0)
    assert (first.attempted, first.succeeded, first.failed) == (1, 0, 1)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempt_count == 1
    assert delivery.next_attempt_at == T0 + timedelta(seconds=5)
    assert webhooks_deliver_due(as_of=T0 + timedelta(seconds=4)).attempted == 0  # not due yet
    second = webhooks_deliver_due(as_of=T0 + timedelta(seconds=5))
    assert (second.attempted, second.succeeded) == (1, 1)

    assert len(receiver.requests) == 2
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert ids == {delivery.event.webhook_id}
    assert receiver.requests[0].body == receiver.requests[1].body
    for request in receiver.requests:
        payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
        assert payload["id"] == delivery.event.webhook_id
        assert payload["type"] == "subscription.created"
        assert payload["data"]["external_id"] == "sub-1" and payload["data"]["plan"] == "basic"
        assert payload["data"]["customer"] == "cus-sub-1"
    assert request.headers["webhook-signature"].startswith("v1,")
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43 + "=").verify(request.body, request.headers)

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempt_count == 2
    attempts = list(WebhookAttempt.objects.filter(delivery=delivery).order_by("attempted_at", "id"))
    assert [a.status_code for a in attempts] == [500, 200]
    assert [a.response_excerpt for a in attempts] == ["receiver says 500", "receiver says 200"]
    assert all(a.latency_ms >= 0 and not a.manual for a in attempts)


def test_retry_schedule_then_given_up(admin_api, world, receiver):
    receiver.statuses = [503]
    _endpoint(admin_api, receiver.url)
    world.subscription("sub-1")
    delivery = WebhookDelivery.objects.get(event__type="subscription.created")
    WebhookDelivery.objects.exclude(pk=delivery.pk).delete()
    # Delay before each retry after a failure: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
    delays = [timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
              timedelta(hours=5), timedelta(hours=10), timedelta(hours=10)]
    now = T0
    for n, delay in enumerate(delays, start=1):
        assert webhooks_deliver_due(as_of=now).attempted == 1
        delivery.refresh_from_db()
        assert (delivery.attempt_count, delivery.status, delivery.next_attempt_at) == (n, "pending", now + delay)
        now = now + delay
    assert webhooks_deliver_due(as_of=now).attempted == 1  # the 8th and last
    delivery.refresh_from_db()
    assert (delivery.attempt_count, delivery.status, delivery.next_attempt_at) == (8, "failed", None)
    assert now - T0 == timedelta(hours=27, minutes=35, seconds=5)  # retried for more than 24 h
    assert webhooks_deliver_due(as_of=now + timedelta(days=3)).attempted == 0
    assert len(receiver.requests) == 8 and len({r.headers["webhook-id"] for r in receiver.requests}) == 1


def test_endpoint_failing_for_five_days_is_disabled_and_finance_is_told(admin_api, world, receiver, django_user_model,
                                                                         django_capture_on_commit_callbacks):
    finance = django_user_model.objects.create_user("fin", email="fin@example.com", password="pw", is_staff=True)
    finance.groups.add(Group.objects.get(name="finance-admin"))
    receiver.statuses = [500]
    endpoint = _endpoint(admin_api, receiver.url, ["subscription.created"])
    world.subscription("sub-1")
    webhooks_deliver_due(as_of=T0)
    assert WebhookEndpoint.objects.get().failing_since == T0
    world.subscription("sub-2")
    WebhookDelivery.objects.filter(status="pending").update(next_attempt_at=T0)
    with django_capture_on_commit_callbacks(execute=True):
        result = webhooks_deliver_due(as_of=T0 + timedelta(days=5) - timedelta(seconds=1))
    assert result.endpoints_disabled == [] and WebhookEndpoint.objects.get().enabled
    WebhookDelivery.objects.filter(status="pending").update(next_attempt_at=T0)
    with django_capture_on_commit_callbacks(execute=True):
        result = webhooks_deliver_due(as_of=T0 + timedelta(days=5))
    assert result.endpoints_disabled == [endpoint["id"]]
    disabled = WebhookEndpoint.objects.get()
    assert not disabled.enabled and disabled.disabled_reason == "failing since 2030-01-01 12:00 UTC"
    audit = AuditEvent.objects.get(action="webhook_endpoint.disabled")
    assert audit.object_id == endpoint["id"]
    assert [m.to for m in mail.outbox] == [["fin@example.com"]]
    assert receiver.url in mail.outbox[0].subject
    # A disabled endpoint gets nothing, but events keep queuing; enabling it again delivers what waited.
    receiver.statuses = [200]
    world.subscription("sub-3")
    assert webhooks_deliver_due(as_of=T0 + timedelta(days=6)).attempted == 0
    assert admin_api.patch(f"/api/v1/webhook_endpoints/{endpoint['id']}/", {"enabled": True},
                           format="json").status_code == 200
    assert WebhookEndpoint.objects.get().failing_since is None
    assert webhooks_deliver_due(as_of=T0 + timedelta(days=6)).succeeded == 3


def test_a_success_resets_the_failure_streak(admin_api, world, receiver):
    receiver.statuses = [500, 200]
    _endpoint(admin_api, receiver.url, ["subscription.created"])
    world.subscription("sub-1")
    webhooks_deliver_due(as_of=T0)
    assert WebhookEndpoint.objects.get().failing_since == T0
    webhooks_deliver_due(as_of=T0 + timedelta(days=4))
    assert WebhookEndpoint.objects.get().failing_since is None


def test_outbox_only_for_types_an_enabled_endpoint_wants(admin_api, world, receiver):
    world.subscription("sub-0")  # no endpoint yet: nothing written
    assert WebhookEvent.objects.count() == 0
    _endpoint(admin_api, receiver.url, ["invoice.finalized"])
    world.subscription("sub-1")
    assert WebhookEvent.objects.count() == 0
    second = _endpoint(admin_api, receiver.url, ["subscription.created", "subscription.canceled"])
    _endpoint(admin_api, receiver.url)  # all types
    world.subscription("sub-2")
    assert list(WebhookEvent.objects.values_list("type", "object_type")) == [
        ("subscription.created", "subscriptions.subscription")]
    assert WebhookDelivery.objects.count() == 2
    admin_api.patch(f"/api/v1/webhook_endpoints/{second['id']}/", {"enabled": False}, format="json")
    response = admin_api.post("/api/v1/subscriptions/sub-2/cancel/", {"at": "immediately", "date": "2026-01-10"},
                              format="json")
    assert response.status_code == 200, response.content
    assert WebhookEvent.objects.filter(type="subscription.canceled").count() == 1
    assert WebhookDelivery.objects.filter(event__type="subscription.canceled").count() == 1  # the all-types one


def test_outbox_rows_roll_back_with_the_change(admin_api, world, receiver):

    _endpoint(admin_api, receiver.url)
    world.subscription("sub-1")
    before = WebhookEvent.objects.count()
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            subscription_cancel(subscription=Subscription.objects.get(external_id="sub-1"), at="immediately",
                                on=date(2026, 1, 10))
            assert WebhookEvent.objects.count() == before + 1
            raise RuntimeError("the change fails after its audit row")
    assert WebhookEvent.objects.count() == before


def test_a_receiver_that_is_down_never_rolls_back_a_change(admin_api, world, receiver):

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/x"
    _endpoint(admin_api, dead, ["subscription.created"])
    world.subscription("sub-1")
    result = webhooks_deliver_due(as_of=T0)
    assert result.failed == 1
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code is None and attempt.error.startswith("connection error")
    assert WebhookDelivery.objects.get().status == "pending"


def test_payment_failed_maps_to_two_types_with_fallback_and_invoice_payloads(admin_api, receiver):

    _subscriptions(1, calls_each=0)
    billing_run(as_of=date(2026, 1, 1), auto_finalize=False)
    invoice = Invoice.objects.get()
    _endpoint(admin_api, receiver.url, ["payment.failed", "invoice.payment_failed"])
    audit_bulk_create([AuditEvent(action="payment.failed", object_type="payments.paymentattempt", object_id="77",
                                  actor="system", inputs={"invoice": str(invoice.pk), "decline_code": "card_declined",
                                                          "attempt": 1})])
    assert webhooks_deliver_due(as_of=T0).succeeded == 2
    bodies = {json.loads(r.body)["type"]: json.loads(r.body)["data"] for r in receiver.requests}
    # payments.PaymentAttempt exists now (issue 13): attempt 77 does not, so the payload is the "deleted" fallback.
    assert bodies["payment.failed"] == {"object": "payments.paymentattempt", "id": "77", "deleted": True,
                                        "invoice": str(invoice.pk), "decline_code": "card_declined", "attempt": 1}
    api_view = admin_api.get(f"/api/v1/invoices/{invoice.pk}/").json()
    assert bodies["invoice.payment_failed"] == api_view


def test_billing_run_outbox_is_set_based(admin_api, receiver):

    _subscriptions(30, calls_each=0)
    _endpoint(admin_api, receiver.url, ["invoice.created", "invoice.finalized"])
    with CaptureQueriesContext(connection) as queries:
        billing_run(as_of=date(2026, 1, 1), chunk_size=10)
    webhook_sql = [q["sql"] for q in queries.captured_queries if "webhooks_" in q["sql"]]
    assert WebhookEvent.objects.filter(type="invoice.created").count() == 30
    assert WebhookEvent.objects.filter(type="invoice.finalized").count() == 30
    assert WebhookDelivery.objects.count() == 60
    # One SELECT of the endpoints per publish call (3 chunks of drafts + the finalize batches); the rows
    # go in by COPY (not logged as queries). Never a statement per invoice.
    assert all(sql.startswith('SELECT "webhooks_webhookendpoint"') for sql in webhook_sql), webhook_sql
    assert 3 <= len(webhook_sql) <= 6, len(webhook_sql)


def test_deliver_webhooks_command(admin_api, world, receiver):
    _endpoint(admin_api, receiver.url, ["subscription.created"])
    world.subscription("sub-1")
    out = StringIO()
    call_command("deliver_webhooks", "--as-of", "2030-01-01T12:00:00Z", stdout=out)
    assert out.getvalue().strip() == "attempted=1 succeeded=1 failed=0 endpoints_disabled=0"
    assert WebhookDelivery.objects.get().status == "succeeded"


def test_an_object_gone_before_delivery_is_sent_as_deleted(admin_api, receiver):
    _endpoint(admin_api, receiver.url, ["invoice.voided"])
    gone = "00000000-0000-0000-0000-000000000001"
    audit_bulk_create([AuditEvent(action="invoice.voided", object_type="invoicing.invoice", object_id=gone,
                                  actor="system", inputs={"reason": "duplicate"})])
    assert webhooks_deliver_due(as_of=T0).succeeded == 1
    assert json.loads(receiver.requests[0].body)["data"] == {"object": "invoicing.invoice", "id": gone,
                                                             "deleted": True, "reason": "duplicate"}
