"""The Celery app and the beat schedule (synced into django-celery-beat's database scheduler)."""

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_site.settings.base")

app = Celery("ledgerline")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Periodic jobs are sweeps over cursors: safe to rerun and to run twice at once.
app.conf.beat_schedule = {
    # Trials ending and period-end changes first, so the billing run sees the state they leave.
    "subscriptions-activate-trials": {"task": "subscriptions.activate_trials", "schedule": crontab(minute=0)},
    "subscriptions-apply-due-changes": {"task": "subscriptions.apply_due_changes", "schedule": crontab(minute=1)},
    "billing-run-hourly": {"task": "invoicing.tasks.run_billing_today", "schedule": crontab(minute=5)},
    "invoices-auto-finalize": {"task": "invoicing.tasks.auto_finalize", "schedule": crontab(minute=35)},
    "invoice-documents-sweep": {"task": "invoicing.tasks.invoice_documents_sweep", "schedule": crontab(minute="*/15")},
    "usage-partitions-ahead": {"task": "usage.ensure_partitions_ahead", "schedule": crontab(minute=15, hour=3)},
    # Charges left pending (worker died, broker down at enqueue) are retried with their own idempotency key.
    "payments-sweep-pending-attempts": {"task": "payments.tasks.sweep_pending_attempts", "schedule": crontab(minute="*/15")},
    # Dunning: every step due (retries, e-mails, escalations, final actions); each step runs once.
    "dunning-run": {"task": "dunning.tasks.run_dunning", "schedule": crontab(minute="*/15")},
    # Revenue: post new source documents to the journal hourly; close every past month from the 3rd on.
    "revrec-sync": {"task": "revrec.sync", "schedule": crontab(minute=45)},
    "revrec-close-due": {"task": "revrec.close_due", "schedule": crontab(minute=50, hour=4)},
    "analytics-rebuild-mrr-ledger": {"task": "analytics.rebuild_mrr_ledger", "schedule": crontab(minute=30, hour=2)},
    "analytics-detect-anomalies": {"task": "analytics.detect_anomalies", "schedule": crontab(minute=20, hour=1)},
    "analytics-usage-alerts": {"task": "analytics.evaluate_usage_alerts", "schedule": crontab()},
    "webhooks-deliver": {"task": "webhooks.deliver", "schedule": 60.0},
    "idempotency-keys-purge": {"task": "common.purge_idempotency_keys", "schedule": crontab(minute=25)},
    "billing-runs-take-over-stale": {"task": "invoicing.tasks.billing_runs_take_over_stale",
                                     "schedule": crontab(minute="*/10")},
}


@app.task(name="billing_site.ping")
def ping(value: str) -> str:
    """Round-trip check of the broker and the result backend."""
    return f"pong:{value}"
