"""Thin Celery tasks: parse ids/dates, call a service."""

from __future__ import annotations

import logging
from datetime import date, timedelta

from celery import shared_task
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from invoicing import billing_run as runs
from invoicing.billing import invoice_subscription_now
from invoicing.billing_run import billing_run
from invoicing.emails import credit_note_email_send_once, invoice_email_send_once
from invoicing.models import BillingRunChunk, CreditNote, Invoice, InvoiceStatus
from invoicing.pdf import credit_note_pdf_store, invoice_pdf_store
from invoicing.selectors import invoices_missing_documents
from invoicing.services import invoices_auto_finalize
from subscriptions.models import Subscription

# The hourly run bills up to the most advanced timezone's date (UTC+14); each subscription's
# periods close only once their end has passed in its customer's timezone (`now`).
MAX_UTC_OFFSET = timedelta(hours=14)


@shared_task(name="invoicing.tasks.run_billing_today", time_limit=30 * 60, soft_time_limit=25 * 60)
def run_billing_today() -> dict:
    now = timezone.now()
    as_of = (now + MAX_UTC_OFFSET).date()
    run = billing_run(as_of=as_of, now=now, actor="celery:run_billing_today", auto_finalize=False)
    sweep = invoices_auto_finalize(today=timezone.localdate(now))  # grace periods count in UTC days
    return {"billing_run": run.pk, "invoices_created": run.invoices_created, "finalized": sweep.finalized}


@shared_task(name="invoicing.tasks.run_billing", time_limit=30 * 60, soft_time_limit=25 * 60)
def run_billing(as_of: str) -> dict:
    run = billing_run(as_of=date.fromisoformat(as_of), actor="celery:run_billing")
    return {"billing_run": run.pk, "invoices_created": run.invoices_created}


# --- billing runs fanned out over workers (invoicing/billing_run.py) ------------------------------
# Late acknowledgement with reject-on-worker-lost: a chunk whose worker dies is delivered again; the
# chunk is idempotent (its done mark commits with its invoices and cursor moves).

@shared_task(name="invoicing.tasks.billing_run_start", acks_late=True, reject_on_worker_lost=True)
def billing_run_start(run_id: int) -> int:
    try:
        runs.billing_run_start(run_id)
    except Exception as exc:
        runs.billing_run_fail(run_id, exc)
        raise
    return run_id


@shared_task(name="invoicing.tasks.billing_run_chunk", bind=True, acks_late=True, reject_on_worker_lost=True,
             max_retries=3, default_retry_delay=10, time_limit=30 * 60, soft_time_limit=25 * 60)
def billing_run_chunk_task(self, chunk_id: int) -> bool:
    try:
        return runs.billing_run_chunk(chunk_id)
    except (OperationalError, InterfaceError) as exc:  # the database, not the chunk: try again
        if self.request.retries < self.max_retries and not self.request.is_eager:
            raise self.retry(exc=exc)
        run_id = BillingRunChunk.objects.filter(pk=chunk_id).values_list("run_id", flat=True).first()
        if run_id:
            runs.billing_run_fail(run_id, exc)
        raise
    except Exception as exc:
        run_id = BillingRunChunk.objects.filter(pk=chunk_id).values_list("run_id", flat=True).first()
        if run_id:
            runs.billing_run_fail(run_id, exc)
        raise


@shared_task(name="invoicing.tasks.billing_run_complete", acks_late=True, reject_on_worker_lost=True)
def billing_run_complete_task(run_id: int) -> str:
    return runs.billing_run_complete(run_id).status


@shared_task(name="invoicing.tasks.billing_runs_take_over_stale")
def billing_runs_take_over_stale() -> list[int]:
    """Resume runs whose worker or `run_billing` process died (their heartbeat went stale)."""
    return runs.billing_runs_take_over_stale(inline=False)


@shared_task(name="invoicing.tasks.auto_finalize")
def auto_finalize(today: str | None = None) -> dict:
    result = invoices_auto_finalize(today=date.fromisoformat(today) if today else timezone.localdate())
    return {"finalized": result.finalized, "waiting_review": result.waiting_review}


@shared_task(name="invoicing.tasks.invoice_subscription_now", bind=True, max_retries=5, default_retry_delay=30)
def invoice_subscription_now_task(self, subscription_id: int, on_date: str, reason: str = "") -> str | None:
    subscription = Subscription.objects.get(pk=subscription_id)
    invoice = invoice_subscription_now(subscription=subscription, on_date=date.fromisoformat(on_date), reason=reason,
                                       actor="celery:invoice_subscription_now")
    return str(invoice.pk) if invoice else None


# --- documents (issue 7): enqueued on commit by `invoicing.services._after_finalize` -------------

# The document tasks are idempotent (the PDF is stored once, the automatic e-mail is sent once), so
# a message whose worker died is given back to the broker and redelivered (`IDEMPOTENT`), and
# `invoice_documents_sweep` re-enqueues whatever still slipped through.
IDEMPOTENT = dict(acks_late=True, reject_on_worker_lost=True)
DOCUMENTS_GRACE = timedelta(minutes=30)
DOCUMENTS_MAX_AGE = timedelta(days=3)


@shared_task(name="invoicing.tasks.invoice_documents_fan_out", **IDEMPOTENT)
def invoice_documents_fan_out(invoice_ids: list[str]) -> int:
    """One message per finalize batch; each invoice gets its own render → e-mail tasks."""
    for invoice_id in invoice_ids:
        try:
            invoice_pdf_render.delay(str(invoice_id))
        except Exception:  # noqa: BLE001 - one invoice must not hold back the others (eager mode raises here)
            logging.getLogger(__name__).exception("documents of invoice %s failed", invoice_id)
    return len(invoice_ids)


@shared_task(name="invoicing.tasks.invoice_documents_sweep", **IDEMPOTENT)
def invoice_documents_sweep() -> int:
    """Finalized invoices still without a PDF or an e-mail attempt after DOCUMENTS_GRACE get their
    document tasks again (within DOCUMENTS_MAX_AGE, so old invoices are never e-mailed out of the blue)."""
    ids = invoices_missing_documents(now=timezone.now(), grace=DOCUMENTS_GRACE, max_age=DOCUMENTS_MAX_AGE)
    return invoice_documents_fan_out([str(invoice_id) for invoice_id in ids])


@shared_task(name="invoicing.tasks.invoice_pdf_render", bind=True, max_retries=3, default_retry_delay=60,
             time_limit=120, soft_time_limit=90, **IDEMPOTENT)
def invoice_pdf_render(self, invoice_id: str, send_email: bool = True) -> str | None:
    """Render and store the PDF of a finalized invoice (idempotent), then enqueue its e-mail."""
    invoice = Invoice.objects.filter(pk=invoice_id).first()
    if invoice is None or invoice.status in (InvoiceStatus.DRAFT, InvoiceStatus.VOID):
        return None
    try:
        invoice = invoice_pdf_store(invoice=invoice)
    except OperationalError as exc:
        raise self.retry(exc=exc)
    if send_email:
        invoice_email_deliver.delay(invoice_id)
    return invoice.pdf.name


@shared_task(name="invoicing.tasks.invoice_email_deliver", time_limit=120, soft_time_limit=90, **IDEMPOTENT)
def invoice_email_deliver(invoice_id: str) -> str | None:
    """The automatic e-mail after finalize, once per invoice; failures are logged on an InvoiceEmail row."""
    invoice = Invoice.objects.filter(pk=invoice_id).first()
    log = invoice_email_send_once(invoice=invoice) if invoice else None
    return log.status if log else None


@shared_task(name="invoicing.tasks.credit_note_documents_deliver", time_limit=120, soft_time_limit=90, **IDEMPOTENT)
def credit_note_documents_deliver(credit_note_id: str) -> str | None:
    """Render and store a credit note's PDF, then e-mail it once. Enqueue with transaction.on_commit."""
    credit_note = CreditNote.objects.filter(pk=credit_note_id).first()
    if credit_note is None:
        return None
    credit_note_pdf_store(credit_note=credit_note)
    log = credit_note_email_send_once(credit_note=credit_note)
    return log.status if log else None
