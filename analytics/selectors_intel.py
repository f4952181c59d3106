"""Reads of the usage intelligence records (anomalies, usage alerts), for the API, the admin and the
back office pages."""

from __future__ import annotations

from django.db.models import QuerySet

from analytics.models import Anomaly, AnomalyKind, AnomalyStatus
from common.errors import ApplicationError, NotFoundError


def anomalies_list(*, customer: str | None = None, status: str | None = None, subscription: str | None = None,
                   kind: str | None = None) -> QuerySet[Anomaly]:
    qs = Anomaly.objects.select_related("customer", "subscription", "billable_metric").order_by("-date", "-id")
    if customer:
        qs = qs.filter(customer__external_id=customer)
    if subscription:
        qs = qs.filter(subscription__external_id=subscription)
    if status:
        if status not in AnomalyStatus.values:
            raise ApplicationError(f"Unknown status {status!r}.", fields={"status": [f"one of {AnomalyStatus.values}"]})
        qs = qs.filter(status=status)
    if kind:
        if kind not in AnomalyKind.values:
            raise ApplicationError(f"Unknown kind {kind!r}.", fields={"kind": [f"one of {AnomalyKind.values}"]})
        qs = qs.filter(kind=kind)
    return qs


def anomalies_open() -> QuerySet[Anomaly]:
    return anomalies_list(status=AnomalyStatus.OPEN)


def anomaly_get(*, anomaly_id) -> Anomaly:
    try:
        return anomalies_list().get(pk=int(anomaly_id))
    except (ValueError, TypeError, Anomaly.DoesNotExist):
        raise NotFoundError(f"No anomaly {anomaly_id!r}.") from None


def anomaly_as_dict(a: Anomaly) -> dict:
    return {
        "id": a.pk, "customer": a.customer.external_id, "subscription": a.subscription.external_id,
        "billable_metric": a.billable_metric.code if a.billable_metric_id else None, "date": a.date.isoformat(),
        "kind": a.kind, "observed": _plain(a.observed), "expected": _plain(a.expected), "score": str(a.score),
        "method": a.method, "inputs": a.inputs, "status": a.status, "invoice": str(a.invoice_id) if a.invoice_id else None,
        "detected_at": a.detected_at.isoformat(), "resolved_by": a.resolved_by,
        "resolved_at": a.resolved_at.isoformat() if a.resolved_at else None, "note": a.note,
    }


def _plain(value) -> str:
    value = value.normalize()
    return f"{value:f}"
