"""Reads for the dunning API, admin and pages."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Prefetch, QuerySet

from common.errors import ApplicationError, NotFoundError
from common.models import AuditEvent
from dunning.models import CaseStatus, DunningCase, DunningStep, StepKind, StepStatus


def dunning_cases_list(*, status: str | None = None, customer: str | None = None) -> QuerySet[DunningCase]:
    qs = (DunningCase.objects.select_related("customer", "policy", "invoice")
          .prefetch_related(Prefetch("steps", queryset=DunningStep.objects.order_by("scheduled_at", "pk")))
          .order_by("-first_failed_at", "-pk"))
    if status:
        if status not in CaseStatus.values:
            raise ApplicationError(f"Unknown status '{status}'.",
                                   fields={"status": [f"must be one of {', '.join(CaseStatus.values)}"]})
        qs = qs.filter(status=status)
    if customer:
        qs = qs.filter(customer__external_id=customer)
    return qs


def dunning_case_get(*, case_id) -> DunningCase:
    try:
        pk = int(str(case_id))
    except ValueError:
        raise NotFoundError(f"No dunning case {case_id}.")
    case = dunning_cases_list().filter(pk=pk).first()
    if case is None:
        raise NotFoundError(f"No dunning case {case_id}.")
    return case


def case_attempts(case: DunningCase) -> list[dict]:
    """The retries dunning made (the failed charge that opened the case is `first_failure`)."""
    return [{"at": s.executed_at, "outcome": s.outcome if s.outcome in ("succeeded", "failed") else "pending",
             "decline_code": s.decline_code or None, "rule": s.rule, "attempt_number": s.attempt.attempt_number
             if s.attempt_id and s.attempt else None}
            for s in case.steps.all() if s.kind == StepKind.RETRY and s.status == StepStatus.DONE]


def case_next_action(case: DunningCase) -> dict | None:
    if case.status not in (CaseStatus.OPEN, CaseStatus.ACTION_REQUIRED):
        return None
    pending = [s for s in case.steps.all() if s.status == StepStatus.SCHEDULED]
    if not pending:
        return None
    step = min(pending, key=lambda s: (s.scheduled_at, s.pk))
    return {"kind": step.kind, "at": step.scheduled_at}


def case_timeline(case: DunningCase) -> list[dict]:
    """Steps and the case's audit events in time order (the case page)."""
    items = [{"at": s.executed_at or s.scheduled_at, "kind": f"step:{s.kind}", "status": s.status,
              "outcome": s.outcome, "rule": s.rule, "decline_code": s.decline_code, "inputs": s.inputs}
             for s in case.steps.all()]
    for event in AuditEvent.objects.filter(object_type="dunning.dunningcase", object_id=str(case.pk)).order_by("pk"):
        items.append({"at": (event.inputs or {}).get("at") or event.created_at, "kind": event.action, "status": "",
                      "outcome": "", "rule": event.rule, "decline_code": (event.inputs or {}).get("decline_code", ""),
                      "inputs": event.inputs})
    for item in items:
        if isinstance(item["at"], str):
            item["at"] = datetime.fromisoformat(item["at"])
    return sorted(items, key=lambda i: i["at"])
