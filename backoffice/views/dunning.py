"""Dunning (dunning app): cases by status with the next action and the amount, a case's timeline
(its steps and audit events in time order), and "retry now" for finance admins, which calls
`dunning.services.dunning_retry_now`."""

from __future__ import annotations

from django.db.models import Count
from django.shortcuts import get_object_or_404
from django.urls import reverse

from backoffice.roles import admin_required, viewer_required
from backoffice.views.base import page, paginate, query_without_page, run_action
from common.errors import ApplicationError
from common.money import format_money_display
from dunning.models import CaseStatus, DunningCase
from dunning.selectors import case_attempts, case_next_action, case_timeline, dunning_cases_list
from dunning.services import dunning_retry_now


def _row(case: DunningCase) -> dict:
    return {"case": case, "next": case_next_action(case), "attempts": len(case_attempts(case))}


@viewer_required
def dunning_cases(request):
    status = request.GET.get("status", "")
    if status not in CaseStatus.values:
        status = ""
    customer = request.GET.get("customer", "").strip()
    rows = paginate(request, dunning_cases_list(status=status or None, customer=customer or None))
    counts = dict(DunningCase.objects.values_list("status").annotate(n=Count("id")).order_by())
    return page(request, "backoffice/dunning.html", "dunning", rows=rows, items=[_row(c) for c in rows],
                status=status, customer=customer, statuses=[(v, l, counts.get(v, 0)) for v, l in CaseStatus.choices],
                query=query_without_page(request))


@viewer_required
def dunning_case(request, pk: int):
    case = get_object_or_404(dunning_cases_list(), pk=pk)
    return page(request, "backoffice/dunning_case.html", "dunning", case=case, tz=case.customer.timezone,
                next=case_next_action(case), attempts=case_attempts(case), timeline=case_timeline(case),
                live=case.status in (CaseStatus.OPEN, CaseStatus.ACTION_REQUIRED))


@admin_required
def dunning_retry_view(request, pk: int):
    case = get_object_or_404(DunningCase, pk=pk)

    def act():
        step = dunning_retry_now(case_id=case.pk, actor=request.user)
        if step is None:
            raise ApplicationError("Nothing was retried.")
        case.invoice.refresh_from_db()
        due = format_money_display(case.invoice.amount_due, case.invoice.currency)
        return f"Retried dunning case {case.pk}: {step.outcome or step.status} ({due} due)."
    return run_action(request, act, back=reverse("backoffice:dunning_case", args=[case.pk]))
