from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from analytics.alerts import usage_alerts_evaluate
from analytics.anomalies import anomalies_detect
from analytics.mrr import ledger_rebuild


@shared_task(name="analytics.rebuild_mrr_ledger")
def rebuild_mrr_ledger() -> int:
    """Nightly: recompute the MRR movement ledger from history (covers data written without domain
    events, such as imports and corrections). Idempotent: unchanged rows are left alone."""
    return ledger_rebuild()


@shared_task(name="analytics.detect_anomalies")
def detect_anomalies() -> int:
    """Daily: score yesterday (UTC) and any day missed since the last scan."""
    return len(anomalies_detect(as_of=timezone.now().date() - timedelta(days=1), actor="task:detect_anomalies").created)


@shared_task(name="analytics.evaluate_usage_alerts")
def evaluate_usage_alerts() -> int:
    """Every minute: fire the threshold alerts crossed since the last sweep (once per period)."""
    return usage_alerts_evaluate()
