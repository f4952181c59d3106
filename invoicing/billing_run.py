"""The billing run as a job: plan → chunks → complete, inline or fanned out over Celery workers.

Line building stays in `invoicing.billing` (one chunk = `_bill_chunk`: lock the subscriptions,
aggregate, rate, insert, advance the cursors in one transaction). This module owns the sweep
around it (DESIGN.md §6, §15; issues 19, 20 and 10):

- **plan**: one read-only scan (`subscriptions_due`) splits the due subscriptions into
  BillingRunChunk progress rows and records `subscriptions_total` (`subscriptions_due`).
- **chunk**: a chunk locks its progress row (SKIP LOCKED: a duplicate delivery of the same chunk
  does nothing) and bills its subscriptions in the same transaction that marks it done and adds
  its counters to the run. A killed worker rolls the whole chunk back; Celery redelivers the
  message (acks_late, reject_on_worker_lost) or a later run takes the run over. Billing stays
  idempotent through the cursors re-read under the row locks and the unique (subscription,
  billing_date) constraint.
- **isolation**: a subscription that fails (a numeric overflow, a bad price…) is found by
  bisecting the chunk with savepoints; it is reported in the run's `errors`, the others are billed.
- **complete**: the last chunk to finish auto-finalizes the run's drafts (numbers are assigned
  there, gapless, under the counter row lock) and closes the run.
- **heartbeat / takeover**: every chunk and finalize batch refreshes `heartbeat_at`; a run still
  queued or running with a heartbeat older than `BILLING_RUN_STALE_SECONDS` belonged to a process
  that died (`kill -9` of `run_billing`, a lost worker). Every new run first takes such runs over and
  finishes what they began (their remaining chunks, then finalizing their drafts).

The synchronous form (`billing_run`: `manage.py run_billing`, `POST /billing_runs/` with the
default `"wait": true`, the hourly beat) runs the same steps inline in the caller.
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from common.audit import actor_label
from common.errors import ConflictError
from common.locks import row_lock
from invoicing import billing
from invoicing.models import BillingRun, BillingRunChunk, BillingRunStatus, Invoice, InvoiceStatus
from invoicing.services import invoices_auto_finalize
from subscriptions.models import Subscription
from usage.rollups import usage_statistics_refresh

logger = logging.getLogger(__name__)

CHUNK_SIZE = billing.CHUNK_SIZE
ACTIVE = (BillingRunStatus.QUEUED, BillingRunStatus.RUNNING)
FINALIZE_SLICE = 1000
MAX_ERRORS_KEPT = 200
# Errors that say nothing about one subscription (the database went away): never bisected.
NOT_ISOLATED = (OperationalError, InterfaceError)


def stale_after() -> timedelta:
    return timedelta(seconds=getattr(settings, "BILLING_RUN_STALE_SECONDS", 300))


# --- public API ------------------------------------------------------------------------------------

def billing_run(*, as_of: date, actor=None, now: datetime | None = None, auto_finalize: bool = True,
                chunk_size: int = CHUNK_SIZE, subscription_ids=None, max_subscriptions: int | None = None,
                take_over: str = "inline") -> BillingRun:
    """Run billing up to `as_of` (inclusive) in this process and record it as a BillingRun.

    `now` (the hourly beat passes it) additionally holds back periods whose end has not yet
    passed in the customer's timezone. With `auto_finalize`, drafts whose grace period has passed
    by `as_of` are finalized afterwards (flagged drafts wait for review). With
    `max_subscriptions`, a run that would bill more subscriptions is refused (409) before it
    starts: the HTTP form stays a short request or points to `"wait": false`.
    Stale runs are taken over first (`take_over`: "inline", "enqueue" or "none")."""
    if take_over != "none":
        billing_runs_take_over_stale(inline=take_over == "inline")
    due = billing.subscriptions_due(as_of=as_of, now=now, subscription_ids=subscription_ids)
    if max_subscriptions is not None and len(due[1]) > max_subscriptions:
        raise ConflictError(
            f"This run would bill {len(due[1])} subscriptions, more than the {max_subscriptions} a synchronous "
            f"run may take; send \"wait\": false to run it in the background and poll GET /api/v1/billing_runs/{{id}}/.",
            code="billing_run_too_large", fields={"wait": ["Use \"wait\": false for a run of this size."]})
    run = _create(as_of=as_of, actor=actor, now=now, auto_finalize=auto_finalize, chunk_size=chunk_size,
                  subscription_ids=subscription_ids)
    _plan(run.pk, due=due)
    _execute_inline(run.pk)
    run.refresh_from_db()
    return run


def billing_run_enqueue(*, as_of: date, actor=None, now: datetime | None = None, auto_finalize: bool = True,
                        chunk_size: int = CHUNK_SIZE, subscription_ids=None) -> BillingRun:
    """The asynchronous form: record a queued run and hand it to the workers once committed."""
    from invoicing.tasks import billing_run_start  # noqa: PLC0415 — cycle: invoicing.tasks imports this module

    billing_runs_take_over_stale(inline=False)
    run = _create(as_of=as_of, actor=actor, now=now, auto_finalize=auto_finalize, chunk_size=chunk_size,
                  subscription_ids=subscription_ids)
    # robust: a broker that is down must not turn the 202 into a 500; the queued run goes stale
    # and is taken over by the next run or the beat job.
    transaction.on_commit(lambda: billing_run_start.delay(run.pk), robust=True)
    return run


def billing_run_start(run_id: int) -> None:
    """Worker side of the asynchronous form: plan the run, then fan its chunks out as tasks."""
    if _plan(run_id):
        _enqueue_pending(run_id)


def billing_run_chunk(chunk_id: int) -> bool:
    """Bill one chunk (idempotent: a chunk already done or being billed elsewhere is skipped), then
    complete the run if it was the last. Returns whether this call billed the chunk."""
    billed, last, run_id = _execute_chunk(chunk_id)
    if last:
        billing_run_complete(run_id)
    return billed


def billing_run_complete(run_id: int) -> BillingRun:
    """Finalize the run's drafts and close it, once every chunk is done. Safe to call twice."""
    run = BillingRun.objects.get(pk=run_id)
    if run.status not in ACTIVE or run.chunks.filter(done_at__isnull=True).exists():
        return run
    if run.auto_finalize:
        drafts = list(Invoice.objects.filter(billing_run_id=run_id, status=InvoiceStatus.DRAFT)
                      .order_by("pk").values_list("pk", flat=True))
        for start in range(0, len(drafts), FINALIZE_SLICE):
            invoices_auto_finalize(today=run.as_of, invoice_ids=drafts[start:start + FINALIZE_SLICE])
            _heartbeat(run_id)
    with transaction.atomic():
        run = row_lock(BillingRun, run_id)
        if run.status in ACTIVE:
            # Counted from the invoices themselves: a run taken over also owns the drafts its dead
            # process created before it recorded progress.
            mine = Invoice.objects.filter(billing_run_id=run_id)
            run.invoices_created = mine.count()
            run.invoices_finalized = mine.exclude(status__in=[InvoiceStatus.DRAFT, InvoiceStatus.VOID]).count()
            run.status = BillingRunStatus.PARTIAL if run.error_count else BillingRunStatus.SUCCEEDED
            run.finished_at = run.heartbeat_at = timezone.now()
            run.save(update_fields=["invoices_created", "invoices_finalized", "status", "finished_at", "heartbeat_at"])
    return run


def billing_run_fail(run_id: int, exc: BaseException) -> None:
    """A run that cannot go on (not one subscription's fault) says so; committed chunks stay."""
    logger.error("billing run %s failed: %r", run_id, exc)
    BillingRun.objects.filter(pk=run_id, status__in=ACTIVE).update(
        status=BillingRunStatus.FAILED, error=repr(exc)[:2000], finished_at=timezone.now(), heartbeat_at=timezone.now())


def billing_runs_take_over_stale(*, inline: bool = True) -> list[int]:
    """Resume every queued or running run whose heartbeat is older than the stale limit: plan it
    if it never got that far, bill its remaining chunks, finalize its drafts, close it. Claiming a
    run refreshes its heartbeat under a row lock (SKIP LOCKED), so two new runs never both take
    over the same one (and if they did, the chunk locks would still bill each chunk once)."""
    limit = timezone.now() - stale_after()
    with transaction.atomic():
        stale = list(
            BillingRun.objects.select_for_update(skip_locked=True).filter(status__in=ACTIVE)
            .filter(Q(heartbeat_at__lt=limit) | Q(heartbeat_at__isnull=True, created_at__lt=limit)).order_by("pk")
        )
        now = timezone.now()
        for run in stale:
            logger.warning("billing run %s is stale (heartbeat %s): taking it over", run.pk, run.heartbeat_at)
            run.heartbeat_at = now
            run.takeovers += 1
            run.save(update_fields=["heartbeat_at", "takeovers"])
    ids = [run.pk for run in stale]
    for run_id in ids:
        if inline:
            _plan(run_id)
            _execute_inline(run_id)
        else:
            from invoicing.tasks import billing_run_start  # noqa: PLC0415 — cycle: invoicing.tasks imports this module

            transaction.on_commit(lambda run_id=run_id: billing_run_start.delay(run_id), robust=True)
    return ids


# --- internals -----------------------------------------------------------------------------------

def _create(*, as_of, actor, now, auto_finalize, chunk_size, subscription_ids) -> BillingRun:
    return BillingRun.objects.create(
        as_of=as_of, triggered_by=actor_label(actor), status=BillingRunStatus.QUEUED, cutoff_at=now,
        auto_finalize=auto_finalize, chunk_size=max(1, int(chunk_size)), heartbeat_at=timezone.now(),
        subscription_ids=sorted(int(i) for i in subscription_ids) if subscription_ids is not None else None)


def _plan(run_id: int, *, due: tuple[int, list[int]] | None = None) -> bool:
    """Split the due subscriptions into progress rows, once. False when the run is over already."""
    # A load minutes before the run must not leave the chunks' plans to autovacuum (issue 20).
    usage_statistics_refresh()
    with transaction.atomic():
        run = row_lock(BillingRun, run_id)
        if run.status not in ACTIVE:
            return False
        if run.status == BillingRunStatus.QUEUED or (run.chunks_total == 0 and not run.chunks.exists()):
            if due is None:
                due = billing.subscriptions_due(as_of=run.as_of, now=run.cutoff_at,
                                                subscription_ids=run.subscription_ids)
            examined, ids = due
            size = run.chunk_size or CHUNK_SIZE
            BillingRunChunk.objects.bulk_create([
                BillingRunChunk(run=run, position=n, subscription_ids=ids[start:start + size])
                for n, start in enumerate(range(0, len(ids), size))
            ], batch_size=500)
            run.subscriptions_examined = examined
            run.subscriptions_due = len(ids)
            run.chunks_total = -(-len(ids) // size)
            run.status = BillingRunStatus.RUNNING
            run.started_at = run.started_at or timezone.now()
            run.heartbeat_at = timezone.now()
            run.save(update_fields=["subscriptions_examined", "subscriptions_due", "chunks_total", "status",
                                    "started_at", "heartbeat_at"])
    return True


def _execute_inline(run_id: int) -> None:
    """The synchronous form: every remaining chunk in this process, then complete."""
    try:
        for chunk_id in BillingRunChunk.objects.filter(run_id=run_id, done_at__isnull=True).order_by(
                "position").values_list("pk", flat=True):
            _execute_chunk(chunk_id)
        billing_run_complete(run_id)
    except Exception as exc:
        billing_run_fail(run_id, exc)
        raise


def _enqueue_pending(run_id: int) -> None:
    from invoicing.tasks import billing_run_chunk_task, billing_run_complete_task  # noqa: PLC0415 — cycle: invoicing.tasks imports this module

    pending = list(BillingRunChunk.objects.filter(run_id=run_id, done_at__isnull=True).order_by("position")
                   .values_list("pk", flat=True))
    if not pending:
        billing_run_complete_task.delay(run_id)
        return
    for chunk_id in pending:
        billing_run_chunk_task.delay(chunk_id)


def _heartbeat(run_id: int) -> None:
    BillingRun.objects.filter(pk=run_id).update(heartbeat_at=timezone.now())


_PROGRESS_SQL = """
UPDATE invoicing_billingrun
SET subscriptions_done = subscriptions_done + %(subs)s, chunks_done = chunks_done + 1,
    invoices_created = invoices_created + %(invoices)s, lines_created = lines_created + %(lines)s,
    invoices_flagged = invoices_flagged + %(flagged)s, error_count = error_count + %(error_count)s,
    errors = CASE WHEN jsonb_array_length(errors) < %(keep)s THEN errors || %(errors)s::jsonb ELSE errors END,
    heartbeat_at = now()
WHERE id = %(run)s
RETURNING chunks_done >= chunks_total
"""


def _execute_chunk(chunk_id: int) -> tuple[bool, bool, int | None]:
    """(billed, this was the last chunk, run id). The chunk's invoices, cursor moves, done mark and
    the run's counters commit together or not at all."""
    with transaction.atomic():
        # Only the chunk's own row (`of`, no ordering join): the run row must stay free for the
        # other chunks, or SKIP LOCKED would skip them while this one bills.
        chunk = (BillingRunChunk.objects.select_for_update(skip_locked=True, of=("self",))
                 .filter(pk=chunk_id, done_at__isnull=True).order_by("pk").first())
        if chunk is None:
            return False, False, None
        began = timezone.now()
        run = BillingRun.objects.get(pk=chunk.run_id)
        if run.status not in ACTIVE:
            return False, False, run.pk
        result = billing.RunResult()
        _bill_isolating(list(chunk.subscription_ids), run=run, result=result)
        chunk.started_at, chunk.done_at = began, timezone.now()
        chunk.invoices_created = result.invoices_created
        chunk.error_count = len(result.errors)
        chunk.save(update_fields=["started_at", "done_at", "invoices_created", "error_count"])
        with connection.cursor() as cursor:
            cursor.execute(_PROGRESS_SQL, {
                "subs": len(chunk.subscription_ids), "invoices": result.invoices_created,
                "lines": result.lines_created, "flagged": result.invoices_flagged,
                "error_count": len(result.errors), "keep": MAX_ERRORS_KEPT,
                "errors": json.dumps(result.errors[:MAX_ERRORS_KEPT], cls=DjangoJSONEncoder), "run": run.pk})
            (last,) = cursor.fetchone()
    return True, bool(last), run.pk


def _bill_isolating(ids: list[int], *, run: BillingRun, result: billing.RunResult) -> None:
    """Bill `ids` in a savepoint; if that fails, bisect until the failing subscriptions are alone,
    report each of them on the run and bill the rest. A savepoint rolled back releases the row locks
    it took, so the halves lock again cleanly."""
    attempt = billing.RunResult()
    try:
        with transaction.atomic():
            billing._bill_chunk(ids, as_of=run.as_of, now=run.cutoff_at, run=run, result=attempt)
    except NOT_ISOLATED:
        raise
    except Exception as exc:  # noqa: BLE001 — found and reported below, the others are billed
        if len(ids) > 1:
            middle = len(ids) // 2
            _bill_isolating(ids[:middle], run=run, result=result)
            _bill_isolating(ids[middle:], run=run, result=result)
            return
        external_id = Subscription.objects.filter(pk=ids[0]).values_list("external_id", flat=True).first()
        logger.warning("billing run %s: subscription %s failed: %r", run.pk, external_id, exc)
        result.errors.append({"subscription": external_id, "error": _message(exc)})
        return
    result.invoices_created += attempt.invoices_created
    result.lines_created += attempt.lines_created
    result.invoices_flagged += attempt.invoices_flagged
    result.invoice_ids.extend(attempt.invoice_ids)
    result.errors.extend(attempt.errors)


def _message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]
