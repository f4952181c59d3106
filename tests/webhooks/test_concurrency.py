"""Two sweepers at once (real threads, real connections): every delivery is sent exactly once."""

from datetime import datetime, timezone

import pytest

from common.audit import audit_bulk_create
from common.models import AuditEvent
from webhooks.delivery import webhooks_deliver_due
from webhooks.models import WebhookAttempt, WebhookDelivery
from webhooks.services import webhook_endpoint_create
from tests.race import race

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_sweepers_never_send_a_delivery_twice(receiver):
    receiver.delay = 0.02
    webhook_endpoint_create(url=receiver.url, events=["anomaly.detected"])
    audit_bulk_create([AuditEvent(action="anomaly.detected", object_type="usage.anomaly", object_id=str(i),
                                  actor="rule", inputs={"score": i}) for i in range(24)])
    # Committed outbox rows kick the sweeper at once (Celery runs eagerly in tests): the 0 s attempt.
    assert WebhookDelivery.objects.filter(status="succeeded").count() == 24
    assert len(receiver.requests) == 24
    # Now make all 24 due again and race two sweepers over them.
    as_of = datetime(2030, 1, 1, tzinfo=timezone.utc)
    WebhookAttempt.objects.all().delete()
    WebhookDelivery.objects.update(status="pending", attempt_count=0, next_attempt_at=as_of, delivered_at=None)
    receiver.requests.clear()
    raced = race(*[lambda: webhooks_deliver_due(as_of=as_of, batch_size=5)] * 2, join_timeout=60)
    results, errors = raced.returned, raced.errors
    assert errors == []
    assert sum(r.attempted for r in results) == 24
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(ids) == 24 and len(set(ids)) == 24
    assert WebhookAttempt.objects.count() == 24
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"succeeded"}
