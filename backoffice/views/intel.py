"""Usage intelligence (analytics/anomalies, invoicing/explanations): the anomalies list with dismiss
and confirm for finance admins (`analytics.anomalies.anomaly_dismiss` / `anomaly_confirm`), and the
open anomalies behind a draft in the review queue."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.shortcuts import get_object_or_404

from analytics.anomalies import anomaly_confirm, anomaly_dismiss
from analytics.models import Anomaly, AnomalyKind, AnomalyStatus
from analytics.selectors_intel import anomalies_list
from backoffice.forms import ReasonForm
from backoffice.roles import admin_required, viewer_required
from backoffice.views.base import page, paginate, query_without_page, run_action


def anomalies_for_invoice(invoice) -> list[Anomaly]:
    """Open anomalies raised on this draft or on its subscription's usage days inside its period."""
    match = Q(invoice=invoice)
    if invoice.subscription_id and invoice.period_start and invoice.period_end:
        match |= Q(subscription_id=invoice.subscription_id, date__gte=invoice.period_start,
                   date__lte=invoice.period_end - timedelta(days=1))
    return list(Anomaly.objects.filter(match, status=AnomalyStatus.OPEN)
                .select_related("billable_metric", "subscription").order_by("date", "pk"))


@viewer_required
def anomalies(request):
    status = request.GET.get("status", AnomalyStatus.OPEN)
    status = status if status in AnomalyStatus.values or status == "" else AnomalyStatus.OPEN
    kind = request.GET.get("kind", "")
    kind = kind if kind in AnomalyKind.values else ""
    customer = request.GET.get("customer", "").strip()
    rows = paginate(request, anomalies_list(status=status or None, kind=kind or None, customer=customer or None)
                    .select_related("invoice"))
    return page(request, "backoffice/anomalies.html", "anomalies", rows=rows, status=status, kind=kind,
                customer=customer, statuses=AnomalyStatus.choices, kinds=AnomalyKind.choices,
                query=query_without_page(request))


def _resolve(request, pk, service, verb):
    anomaly = get_object_or_404(Anomaly, pk=pk)
    form = ReasonForm(request.POST)
    form.is_valid()
    note = form.cleaned_data.get("reason", "")
    nxt = request.POST.get("next", "")
    back = nxt if nxt.startswith("/") and not nxt.startswith("//") else "/anomalies/"

    def act():
        done = service(anomaly=anomaly, actor=request.user, note=note)
        return f"Anomaly {done.pk} ({done.get_kind_display()} on {done.date:%b %-d, %Y}) {verb}."
    return run_action(request, act, back=back)


@admin_required
def anomaly_dismiss_view(request, pk: int):
    return _resolve(request, pk, anomaly_dismiss, "dismissed: the pattern will not be flagged again")


@admin_required
def anomaly_confirm_view(request, pk: int):
    return _resolve(request, pk, anomaly_confirm, "confirmed")
