"""Billing runs as jobs (invoicing/billing_run.py): the asynchronous API form, the size limit of the
synchronous form, chunks on a real Celery worker through Redis, idempotent chunks, a failing
subscription isolated from the others, and the takeover of a run whose process died.

World: subscriptions on a plan of 10.00 a month in advance plus 1.00 per call, started 2026-01-01
with two calls each in January. Billing as of 2026-02-01 gives each subscription two invoices:
Jan 1 (January's fee, 10.00) and Feb 1 (February's fee + January's 2 calls, 12.00)."""

import threading
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone as dj_timezone

from invoicing import billing_run as runs
from invoicing.billing import billing_run
from invoicing.models import BillingRun, BillingRunChunk, Invoice, InvoiceStatus
from subscriptions.models import Subscription
from tests.catalog.factories import BillableMetricFactory, ChargeFactory, PlanVersionFactory
from tests.race import race
from tests.subscriptions.factories import SubscriptionFactory
from usage.rollups import usage_rollups_rebuild
from usage.services.ingest import event_ingest_batch

AS_OF = date(2026, 2, 1)


def _subscriptions(n: int, *, metric_code: str = "calls", summed: bool = False):
    metric = BillableMetricFactory(code=metric_code, summed=summed)
    version = PlanVersionFactory(amount=Decimal("10"), pay_in_advance=True, plan__currency="USD")
    ChargeFactory(plan_version=version, billable_metric=metric, properties={"unit_amount": "1"})
    subs = [SubscriptionFactory(plan_version=version, start_date=date(2026, 1, 1)) for _ in range(n)]
    props = {"amount": "1"} if summed else {}
    events = [{"transaction_id": f"t-{s.pk}-{i}", "subscription": s.external_id, "code": metric_code,
               "timestamp": f"2026-01-{10 + i:02d}T00:00:00Z", "properties": props} for s in subs for i in range(2)]
    result = event_ingest_batch(events=events, now=datetime(2026, 2, 1, tzinfo=timezone.utc))
    assert result.accepted == len(events)
    return subs


def _totals():
    return sorted(f"{t:.2f}" for t in Invoice.objects.values_list("total", flat=True))


def _numbers_gapless(count: int) -> bool:
    numbers = sorted(Invoice.objects.exclude(number=None).values_list("number", flat=True))
    return numbers == [f"INV-2026-{i:06d}" for i in range(1, count + 1)]


# --- API --------------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_async_run_answers_202_at_once_and_reports_progress(admin_api, reader_api,
                                                            django_capture_on_commit_callbacks, settings):
    settings.BILLING_RUN_CHUNK_SIZE = 2
    _subscriptions(5)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = admin_api.post("/api/v1/billing_runs/", {"as_of": "2026-02-01", "wait": False}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["subscriptions_total"] == 0 and body["started_at"] is None
    assert Invoice.objects.count() == 0  # nothing billed inside the request
    detail = reader_api.get(f"/api/v1/billing_runs/{body['id']}/").json()
    assert detail["status"] == "queued"
    # The workers (eager here) pick it up once the request's transaction commits.
    with django_capture_on_commit_callbacks(execute=True):
        for callback in queued:
            callback()
    detail = reader_api.get(f"/api/v1/billing_runs/{body['id']}/").json()
    assert detail["status"] == "succeeded", detail
    assert (detail["subscriptions_total"], detail["subscriptions_done"], detail["invoices_created"],
            detail["invoices_finalized"], detail["error_count"], detail["errors"], detail["error"]) == (
        5, 5, 10, 10, 0, [], "")
    assert detail["started_at"] and detail["finished_at"] and detail["as_of"] == "2026-02-01"
    assert BillingRunChunk.objects.filter(run_id=body["id"]).count() == 3  # 2 + 2 + 1
    assert _totals() == ["10.00"] * 5 + ["12.00"] * 5
    assert _numbers_gapless(10)


@pytest.mark.django_db
def test_synchronous_run_over_the_limit_is_refused_with_a_hint(admin_api, settings):
    settings.BILLING_RUN_SYNC_MAX_SUBSCRIPTIONS = 2
    _subscriptions(3)
    response = admin_api.post("/api/v1/billing_runs/", {"as_of": "2026-02-01"}, format="json")
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["code"] == "billing_run_too_large"
    assert '"wait": false' in error["message"] and "wait" in error["fields"]
    assert BillingRun.objects.count() == 0 and Invoice.objects.count() == 0
    # Within the limit the synchronous form bills inside the request as before.
    settings.BILLING_RUN_SYNC_MAX_SUBSCRIPTIONS = 3
    response = admin_api.post("/api/v1/billing_runs/", {"as_of": "2026-02-01"}, format="json")
    assert response.status_code == 201, response.content
    assert (response.json()["status"], response.json()["subscriptions_total"],
            response.json()["invoices_created"]) == ("succeeded", 3, 6)


# --- failure isolation (issue 10 item 3) -------------------------------------------------------------

@pytest.mark.django_db
def test_a_subscription_that_overflows_is_reported_and_the_others_are_billed(admin_api):
    subs = _subscriptions(5, metric_code="gb", summed=True)
    poisoned = subs[2]
    # A value beyond what an invoice amount can hold, written straight into the event table (past
    # ingestion's validation): 1e20 × 1.00 does not fit a money column (16 integer digits).
    with connection.cursor() as cursor:
        cursor.execute("UPDATE usage_event SET value = 1e20 WHERE subscription_id = %s", [poisoned.pk])
    usage_rollups_rebuild(subscription_ids=[poisoned.pk])  # billing reads the daily rollups
    response = admin_api.post("/api/v1/billing_runs/", {"as_of": "2026-02-01"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "failed"  # finished with errors: never reported as success (API.md statuses)
    assert "could not be billed" in body["error"]
    assert (body["subscriptions_total"], body["subscriptions_done"], body["invoices_created"]) == (5, 5, 8)
    assert body["error_count"] == 1
    (error,) = body["errors"]
    assert error["subscription"] == poisoned.external_id
    assert "overflow" in error["error"].lower()
    assert not Invoice.objects.filter(subscription=poisoned).exists()
    assert _totals() == ["10.00"] * 4 + ["12.00"] * 4  # the others: 10.00 fee, then 10.00 + 2 × 1.00
    assert _numbers_gapless(8)
    poisoned.refresh_from_db()
    assert (poisoned.usage_billed_through, poisoned.advance_billed_through) == (None, None)  # retried next run
    # Once the bad value is corrected, the next run bills it.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE usage_event SET value = 1 WHERE subscription_id = %s", [poisoned.pk])
    usage_rollups_rebuild(subscription_ids=[poisoned.pk])
    again = billing_run(as_of=AS_OF)
    assert (again.status, again.invoices_created, again.error_count) == ("succeeded", 2, 0)
    assert _numbers_gapless(10)


# --- chunks -------------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_a_chunk_delivered_twice_bills_once():
    _subscriptions(4)
    run = runs._create(as_of=AS_OF, actor="test", now=None, auto_finalize=False, chunk_size=2, subscription_ids=None)
    assert runs._plan(run.pk)
    first, second = BillingRunChunk.objects.filter(run=run).order_by("position")
    assert runs.billing_run_chunk(first.pk) is True
    run.refresh_from_db()
    assert (run.status, run.subscriptions_done, run.chunks_done, run.invoices_created) == ("running", 2, 1, 4)
    assert runs.billing_run_chunk(first.pk) is False  # redelivered after a lost ack: nothing again
    assert runs.billing_run_chunk(second.pk) is True
    run.refresh_from_db()
    assert (run.status, run.subscriptions_done, run.chunks_done, run.invoices_created) == ("succeeded", 4, 2, 8)
    assert Invoice.objects.count() == 8 and not Invoice.objects.exclude(status=InvoiceStatus.DRAFT).exists()


@pytest.mark.django_db(transaction=True)
def test_two_workers_on_the_same_chunk_bill_it_once():
    _subscriptions(6)
    run = runs._create(as_of=AS_OF, actor="test", now=None, auto_finalize=True, chunk_size=6, subscription_ids=None)
    runs._plan(run.pk)
    (chunk,) = BillingRunChunk.objects.filter(run=run)
    raced = race(*[lambda: runs.billing_run_chunk(chunk.pk)] * 2, join_timeout=60)
    results, errors = raced.returned, raced.errors
    assert errors == []
    assert sorted(results) == [False, True]
    run.refresh_from_db()
    assert (run.status, run.invoices_created, run.invoices_finalized, run.subscriptions_done) == ("succeeded", 12, 12, 6)
    assert Invoice.objects.count() == 12 and _numbers_gapless(12)


@pytest.mark.django_db(transaction=True)
def test_chunks_of_one_run_bill_in_parallel():
    """While one worker holds its chunk (mid-transaction), another worker bills the next chunk: the
    chunk lock covers the chunk's own row only, never the run row."""
    from django.db import transaction

    _subscriptions(4)
    run = runs._create(as_of=AS_OF, actor="test", now=None, auto_finalize=False, chunk_size=2, subscription_ids=None)
    runs._plan(run.pk)
    first, second = BillingRunChunk.objects.filter(run=run).order_by("position")
    holding, release, results = threading.Event(), threading.Event(), []

    def busy_worker():
        try:
            with transaction.atomic():
                results.append(runs._execute_chunk(first.pk)[0])
                holding.set()
                release.wait(20)
        finally:
            holding.set()
            connection.close()

    thread = threading.Thread(target=busy_worker)
    thread.start()
    holding.wait(20)
    try:
        assert runs.billing_run_chunk(second.pk) is True
    finally:
        release.set()
        thread.join(30)
    assert results == [True]
    run.refresh_from_db()
    assert (run.chunks_done, run.subscriptions_done, run.invoices_created) == (2, 4, 8)


@pytest.mark.django_db(transaction=True)
def test_chunks_run_on_a_real_celery_worker_through_redis():
    """The asynchronous form end to end: the run is queued in Redis, a real worker (a thread here)
    plans it, bills its chunks and finalizes."""
    from celery.contrib.testing.worker import start_worker

    import invoicing.tasks  # noqa: F401 — registers the tasks
    from billing_site.celery import app

    _subscriptions(7)
    app.conf.task_always_eager = False
    try:
        with start_worker(app, perform_ping_check=False, pool="solo", loglevel="WARNING"):
            run = runs.billing_run_enqueue(as_of=AS_OF, actor="test", chunk_size=3)
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                run.refresh_from_db()
                if run.status not in ("queued", "running"):
                    break
                time.sleep(0.2)
    finally:
        app.conf.task_always_eager = True
        app.control.purge()  # the invoices' document tasks: not this test's subject
    assert (run.status, run.chunks_total, run.chunks_done, run.subscriptions_due, run.subscriptions_done) == (
        "succeeded", 3, 3, 7, 7)
    assert (run.invoices_created, run.invoices_finalized, run.error_count) == (14, 14, 0)
    assert _totals() == ["10.00"] * 7 + ["12.00"] * 7
    assert _numbers_gapless(14)


# --- heartbeat and takeover (issue 10 item 9) ---------------------------------------------------------

@pytest.mark.django_db
def test_a_stale_run_is_taken_over_and_finished_by_the_next_run():
    subs = _subscriptions(6)
    # A run_billing process billed its first chunk (drafts, not yet finalized), then was killed -9.
    dead = runs._create(as_of=AS_OF, actor="manage.py run_billing", now=None, auto_finalize=True, chunk_size=4,
                        subscription_ids=None)
    runs._plan(dead.pk)
    first = BillingRunChunk.objects.filter(run=dead).order_by("position").first()
    assert runs._execute_chunk(first.pk)[0]
    BillingRun.objects.filter(pk=dead.pk).update(heartbeat_at=dj_timezone.now() - timedelta(minutes=30))
    assert Invoice.objects.filter(status=InvoiceStatus.DRAFT).count() == 8
    # Another run that is alive (fresh heartbeat) is not taken over.
    alive = runs._create(as_of=date(2026, 1, 1), actor="test", now=None, auto_finalize=True, chunk_size=4,
                         subscription_ids=None)

    new = billing_run(as_of=AS_OF, actor="manage.py run_billing")

    dead.refresh_from_db()
    assert (dead.status, dead.takeovers, dead.subscriptions_done, dead.chunks_done) == ("succeeded", 1, 6, 2)
    assert (dead.invoices_created, dead.invoices_finalized) == (12, 12) and dead.finished_at is not None
    assert (new.status, new.invoices_created, new.subscriptions_due) == ("succeeded", 0, 0)
    assert Invoice.objects.count() == 12 and not Invoice.objects.filter(status=InvoiceStatus.DRAFT).exists()
    assert _numbers_gapless(12)
    assert set(Subscription.objects.filter(pk__in=[s.pk for s in subs]).values_list(
        "usage_billed_through", "advance_billed_through")) == {(date(2026, 2, 1), date(2026, 3, 1))}
    alive.refresh_from_db()
    assert (alive.status, alive.takeovers) == ("queued", 0)


@pytest.mark.django_db
def test_a_run_killed_before_its_chunks_were_recorded_is_finished(settings):
    """A run that died without progress rows (killed while planning, or started by an older
    version): the takeover plans what is still due and finalizes the drafts it had created."""
    from invoicing import billing

    settings.BILLING_RUN_STALE_SECONDS = 60
    _subscriptions(4)
    dead = BillingRun.objects.create(as_of=AS_OF, status="running", triggered_by="manage.py run_billing",
                                     heartbeat_at=dj_timezone.now() - timedelta(minutes=5))
    half = list(Subscription.objects.order_by("pk").values_list("pk", flat=True))[:2]
    billing._bill_chunk(half, as_of=AS_OF, now=None, run=dead, result=billing.RunResult())
    assert Invoice.objects.filter(billing_run=dead, status=InvoiceStatus.DRAFT).count() == 4

    runs.billing_runs_take_over_stale()

    dead.refresh_from_db()
    assert (dead.status, dead.takeovers, dead.subscriptions_due, dead.subscriptions_done) == ("succeeded", 1, 2, 2)
    assert (dead.invoices_created, dead.invoices_finalized) == (8, 8)
    assert Invoice.objects.filter(billing_run=dead).count() == 8 and _numbers_gapless(8)


@pytest.mark.django_db(transaction=True)
def test_kill_9_of_run_billing_is_finished_by_the_next_run(settings):
    """The real thing: `manage.py run_billing` in its own process, killed with SIGKILL after some of
    its chunks committed; the next run takes the dead run over once its heartbeat is stale."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    subs = _subscriptions(40)
    db = connection.settings_dict
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="billing_site.settings.test", BILLING_RUN_CHUNK_SIZE="1",
               DATABASE_URL=f"postgres://{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "manage.py", "run_billing", "--as-of", "2026-02-01"], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if BillingRun.objects.filter(chunks_done__gte=3).exists():
                break
            time.sleep(0.01)
        assert proc.poll() is None, "run_billing finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
    dead = BillingRun.objects.get()
    assert dead.status == "running" and 3 <= dead.chunks_done < 40
    assert not Invoice.objects.exclude(status=InvoiceStatus.DRAFT).exists()  # killed before finalizing

    settings.BILLING_RUN_STALE_SECONDS = 1
    time.sleep(1.5)
    new = billing_run(as_of=AS_OF, actor="manage.py run_billing")

    dead.refresh_from_db()
    assert (dead.status, dead.takeovers, dead.subscriptions_done, dead.chunks_done) == ("succeeded", 1, 40, 40)
    assert (dead.invoices_created, dead.invoices_finalized) == (80, 80)
    assert (new.status, new.invoices_created) == ("succeeded", 0)
    assert Invoice.objects.filter(status=InvoiceStatus.FINALIZED).count() == 80 and _numbers_gapless(80)
    assert _totals() == ["10.00"] * 40 + ["12.00"] * 40
    assert set(Subscription.objects.filter(pk__in=[s.pk for s in subs]).values_list(
        "usage_billed_through", "advance_billed_through")) == {(date(2026, 2, 1), date(2026, 3, 1))}
