"""Thin Celery tasks: parse ids/dates, call a service."""

from __future__ import annotations

from datetime import date, timedelta

from celery import shared_task
from django.utils import timezone

from invoicing.billing import billing_run, invoice_subscription_now
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
