"""Races with real, separate database connections (one per thread, started together at a barrier):
a threshold alert fires once per period, an anomaly is written once, whatever runs at the same time."""

import threading
from datetime import date, datetime, timezone

import pytest
from django.db import connection

from analytics.alerts import usage_alert_create, usage_alerts_evaluate
from analytics.anomalies import anomalies_detect
from analytics.models import Anomaly, UsageAlertTrigger
from common.models import AuditEvent
from invoicing.billing import billing_run
from subscriptions.models import Subscription
from webhooks.models import WebhookDelivery, WebhookEvent
from webhooks.services import webhook_endpoint_create

pytestmark = pytest.mark.django_db(transaction=True)


def _in_threads(targets):
    barrier = threading.Barrier(len(targets))
    errors, results = [], [None] * len(targets)

    def run(i, target):
        try:
            barrier.wait()
            results[i] = target()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    return errors, results


@pytest.fixture
def endpoint(db):
    # nothing listens on this port (the helper's own range): the outbox row is what is counted
    return webhook_endpoint_create(url="http://127.0.0.1:8329/hook", events=["usage.threshold_crossed",
                                                                            "anomaly.detected"])


def _alert_world(world):
    world.metric("calls")
    world.plan("std", amount="0", pay_in_advance=False,
               charges=[{"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "2"}}])
    world.customer("c1")
    sub = world.subscription("s1", customer="c1", plan="std", start_date=date(2026, 3, 1))
    alert = usage_alert_create(subscription=sub, billable_metric_code="calls", threshold_units=10)
    world.events("calls", [f"2026-03-02T10:{m:02d}:00Z" for m in range(12)], customer="c1")
    return sub, alert


@pytest.mark.parametrize("scoped", [False, True], ids=["two_sweeps", "sweep_and_ingestion_check"])
def test_threshold_alert_fires_once_per_period_under_a_race(world, endpoint, scoped):
    sub, alert = _alert_world(world)
    now = datetime(2026, 3, 3, tzinfo=timezone.utc)
    second = ((lambda: usage_alerts_evaluate(now=now, subscription_ids=[sub.pk])) if scoped
              else (lambda: usage_alerts_evaluate(now=now)))
    for _ in range(3):  # a few rounds: the interleaving differs each time
        UsageAlertTrigger.objects.all().delete()
        AuditEvent.objects.filter(action="usage.threshold_crossed").delete()
        WebhookDelivery.objects.all().delete()
        WebhookEvent.objects.all().delete()
        errors, fired = _in_threads([lambda: usage_alerts_evaluate(now=now), second])
        assert errors == []
        assert sorted(fired) == [0, 1]
        assert list(UsageAlertTrigger.objects.values_list("alert_id", "period_start", "units")) == [
            (alert.pk, date(2026, 3, 1), 12)]
        assert AuditEvent.objects.filter(action="usage.threshold_crossed", object_id=str(alert.pk)).count() == 1
        assert WebhookEvent.objects.filter(type="usage.threshold_crossed").count() == 1
        assert WebhookDelivery.objects.count() == 1


def _spiky_january(world):
    world.metric("calls")
    world.plan("metered", pay_in_advance=False,
               charges=[{"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "1"}}])
    for c in ("c1", "c2"):
        world.customer(c)
        world.subscription(f"s-{c}", customer=c, plan="metered", start_date=date(2026, 1, 1))
        stamps = []
        for day in range(1, 32):
            n = 60 if day in (20, 25) else 10  # two spikes each
            stamps += [f"2026-01-{day:02d}T{h % 24:02d}:{h // 24:02d}:00Z" for h in range(n)]
        world.events("calls", stamps, customer=c)


def test_two_scans_at_once_write_each_anomaly_once(world, endpoint):
    _spiky_january(world)
    errors, results = _in_threads([lambda: anomalies_detect(as_of=date(2026, 1, 31)),
                                   lambda: anomalies_detect(as_of=date(2026, 1, 31))])
    assert errors == []
    assert sorted(len(r.created) for r in results) == [0, 4]
    assert sorted(Anomaly.objects.values_list("subscription__external_id", "date", "kind")) == [
        ("s-c1", date(2026, 1, 20), "spike"), ("s-c1", date(2026, 1, 25), "spike"),
        ("s-c2", date(2026, 1, 20), "spike"), ("s-c2", date(2026, 1, 25), "spike")]
    detected = AuditEvent.objects.filter(action="anomaly.detected")
    assert sorted(detected.values_list("object_id", flat=True)) == sorted(str(pk) for pk in Anomaly.objects.values_list(
        "pk", flat=True))
    assert WebhookEvent.objects.filter(type="anomaly.detected").count() == 4


def test_a_scan_racing_the_billing_run_holds_each_draft_once(world, endpoint):
    _spiky_january(world)
    errors, _ = _in_threads([lambda: anomalies_detect(as_of=date(2026, 1, 31)),
                             lambda: billing_run(as_of=date(2026, 2, 1), chunk_size=1)])
    assert errors == []
    assert Anomaly.objects.count() == 4  # whoever scored a day first wrote it; the other skipped it
    assert AuditEvent.objects.filter(action="anomaly.detected").count() == 4
    assert WebhookEvent.objects.filter(type="anomaly.detected").count() == 4
    from invoicing.models import Invoice

    for sub in Subscription.objects.all():
        (draft,) = Invoice.objects.filter(subscription=sub)
        # 29 × 10 + 2 × 60 = 410 calls; held with both spikes as reasons, each once
        assert (draft.status, draft.total, draft.needs_review) == ("draft", 410, True)
        spikes = sorted((r["date"], r["anomaly"]) for r in draft.review_reasons if r["rule"] == "anomaly.spike")
        assert spikes == sorted((a.date.isoformat(), a.pk) for a in Anomaly.objects.filter(subscription=sub))
        assert AuditEvent.objects.filter(action="invoice.flagged", object_id=str(draft.pk),
                                         rule="anomaly.spike").count() == 2
