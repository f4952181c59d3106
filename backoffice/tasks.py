"""Thin Celery task: a billing run started from the back office, credited to the user who started it."""

from __future__ import annotations

from datetime import date

from celery import shared_task
from django.contrib.auth import get_user_model

from invoicing.billing import billing_run


@shared_task(name="backoffice.tasks.billing_run_start", time_limit=30 * 60, soft_time_limit=25 * 60)
def billing_run_start(as_of: str, user_id: int | None = None) -> dict:
    actor = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    run = billing_run(as_of=date.fromisoformat(as_of), actor=actor or "backoffice")
    return {"billing_run": run.pk, "invoices_created": run.invoices_created}
