import json
from datetime import date

import pytest
from django.contrib.auth import get_user_model

from common.models import AuditEvent
from tests.catalog.factories import BillableMetricFactory
from tests.customers.factories import CustomerFactory
from tests.subscriptions.factories import SubscriptionFactory
from tests.catalog.factories import ChargeFactory
from tests.usage.helpers import event
from usage.models import DeadLetterEvent, UsageEvent
from usage.services.dead_letters import dead_letter_replay
from usage.services.ingest import event_ingest_batch


def post(client, body):
    return client.post("/api/v1/events/", data=json.dumps(body), content_type="application/json")


@pytest.mark.django_db
def test_replay_after_finance_creates_the_missing_customer(usage_api, make_metric):
    metric = make_metric("api_calls")
    response = post(usage_api, event("t1", customer="newco"))
    assert response.status_code == 400
    letter = DeadLetterEvent.objects.get()
    assert (letter.reason, letter.customer_external_id, letter.metric_code) == ("unknown_customer", "newco", "api_calls")
    assert letter.replayed_at is None

    # replaying before the fix records the failure on the same row, no new dead letter
    again = dead_letter_replay(dead_letter=letter, actor="finance@example.com")
    assert (again.replay_status, again.replay_reason, again.replay_count) == ("rejected", "unknown_customer", 1)
    assert DeadLetterEvent.objects.count() == 1

    customer = CustomerFactory(external_id="newco")
    sub = SubscriptionFactory(customer=customer, start_date=date(2026, 1, 1))
    ChargeFactory(plan_version=sub.plan_version, billable_metric=metric)
    fixed = dead_letter_replay(dead_letter=letter, actor="finance@example.com")
    assert fixed.replay_status == "accepted" and fixed.is_resolved and fixed.replay_count == 2
    assert fixed.replayed_by == "finance@example.com"
    stored = UsageEvent.objects.get(transaction_id="t1")
    assert stored.subscription_id == sub.id
    assert AuditEvent.objects.filter(action="usage.dead_letter_replayed", object_id=str(letter.pk)).count() == 2

    # a resolved dead letter is not replayed twice; the client's own retry is a duplicate
    assert dead_letter_replay(dead_letter=letter).replay_count == 2
    assert post(usage_api, event("t1", customer="newco")).status_code == 200
    assert UsageEvent.objects.count() == 1


@pytest.mark.django_db
def test_batch_dead_letter_replays_exact_values(make_metric):
    metric = make_metric("gb", "sum", "gb")
    result = event_ingest_batch(events=[{"transaction_id": "b1", "subscription": "later", "code": "gb",
                                         "timestamp": "2026-02-01T00:00:00Z", "properties": {"gb": "0.30"}}])
    assert result.rejected[0]["error"]["code"] == "unknown_subscription"
    letter = DeadLetterEvent.objects.get()
    sub = SubscriptionFactory(external_id="later", start_date=date(2026, 1, 1))
    ChargeFactory(plan_version=sub.plan_version, billable_metric=metric)
    assert dead_letter_replay(dead_letter=letter).replay_status == "accepted"
    assert str(UsageEvent.objects.get().value) == "0.300000000000"


@pytest.mark.django_db
def test_malformed_dead_letter_replays_as_rejected(usage_api):
    usage_api.post("/api/v1/events/", data="{broken", content_type="application/json")
    letter = DeadLetterEvent.objects.get()
    replayed = dead_letter_replay(dead_letter=letter)
    assert (replayed.replay_status, replayed.replay_reason) == ("rejected", "malformed_body")


@pytest.mark.django_db
def test_admin_lists_filters_and_replays(client, usage_api):
    BillableMetricFactory(code="api_calls")
    post(usage_api, event("t1", customer="ghost"))
    post(usage_api, event("t2", code="unknown_code"))
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)

    page = client.get("/admin/usage/deadletterevent/?reason__exact=unknown_customer")
    assert page.status_code == 200
    assert b"t1" in page.content and b"unknown_code" not in page.content
    detail = client.get(f"/admin/usage/deadletterevent/{DeadLetterEvent.objects.get(transaction_id='t1').pk}/change/")
    assert detail.status_code == 200

    ghost = CustomerFactory(external_id="ghost")
    sub = SubscriptionFactory(customer=ghost, start_date=date(2026, 1, 1))
    ChargeFactory(plan_version=sub.plan_version, billable_metric=BillableMetricFactory(code="api_calls"))
    letter = DeadLetterEvent.objects.get(transaction_id="t1")
    response = client.post("/admin/usage/deadletterevent/",
                           {"action": "replay", "_selected_action": [letter.pk]}, follow=True)
    assert response.status_code == 200
    letter.refresh_from_db()
    assert letter.replay_status == "accepted"
    assert letter.replayed_by.endswith("root")
    assert UsageEvent.objects.filter(transaction_id="t1").exists()
