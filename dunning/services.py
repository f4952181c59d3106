"""Dunning services (DESIGN.md §7): open a case on a failed charge, plan its steps, run due steps
exactly once, close it when the invoice is paid, voided or credited. Thin callers (hooks, the
`run_dunning` command, the Celery beat task, the API and the admin) only call these.

Clock. `run_dunning --as-of T` acts as if now were T: `dunning_clock(T)` sets the instant that
every service here reads through `dunning_now()` (the hooks fired by a retry's charge included),
so steps, attempts and audit inputs are stamped with T.

Lock order, on every path: invoice → case → step (each by pk). The payments app resolves a charge
holding the invoice lock and publishes `payment.failed` / `payment.succeeded` / `invoice.paid`
inside that transaction; our handlers then lock the case, so they queue behind a sweep that holds
the same invoice and never the reverse.

Running a step (`dunning_step_run`):
1. one short transaction: lock the invoice, the case and the step (`SKIP LOCKED`); a step that is
   no longer `scheduled` is skipped, so a rerun or a second concurrent sweep does nothing; a retry
   creates its PaymentAttempt (payments' partial unique index allows one pending attempt per
   invoice) and links it to the step, which becomes `done` in the same commit;
2. outside any transaction: the charge (payments.services.payment_attempt_execute, idempotency key
   `payment_attempt:<id>`), the e-mail. Their outcomes are written back on the step.
A crash between 1 and 2 leaves a pending attempt that payments' own sweep charges with the same
key; the step is never run twice.
"""

from __future__ import annotations

import contextvars
import logging
from contextlib import contextmanager
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from common.audit import actor_label, actor_user, audit_record
from common.errors import ApplicationError, ConflictError
from common.locks import row_lock
from customers.models import Customer
from dunning import decline_codes, schedule
from dunning.emails import dunning_email_send
from dunning.models import (LIVE_CASE_STATUSES, CaseStatus, DunningCase, DunningPolicy, DunningStep, FinalAction,
                            StepKind, StepStatus)
from invoicing.models import Invoice, InvoiceStatus
from invoicing.services import invoice_mark_uncollectible
from payments.models import AttemptStatus, Payment, PaymentAttempt, PaymentMethod
from payments.services import NO_PAYMENT_METHOD, payment_attempt_create, payment_attempt_execute
from subscriptions.models import LIVE_STATUSES, SubscriptionStatus
from subscriptions.services import IMMEDIATELY, PERIOD_END, subscription_cancel, subscription_set_past_due

logger = logging.getLogger(__name__)

ACTOR = "rule:dunning"
_as_of: contextvars.ContextVar[datetime | None] = contextvars.ContextVar("dunning_as_of", default=None)


def dunning_now() -> datetime:
    return _as_of.get() or timezone.now()


@contextmanager
def dunning_clock(as_of: datetime | None):
    token = _as_of.set(as_of)
    try:
        yield
    finally:
        _as_of.reset(token)


# --- policies ----------------------------------------------------------------------------------

def policy_default() -> DunningPolicy:
    policy = DunningPolicy.objects.filter(is_default=True).first()
    if policy is None:
        policy, _ = DunningPolicy.objects.get_or_create(name="Default", defaults={"is_default": True})
    return policy


def policy_for(*, customer: Customer, currency: str) -> DunningPolicy:
    """The most specific active policy for the customer's segment and the invoice currency
    (segment and currency > segment > currency > the default)."""
    segment = str((customer.metadata or {}).get("segment") or "")
    candidates = DunningPolicy.objects.filter(active=True).filter(Q(currency="") | Q(currency=currency)).filter(
        Q(segment="") | Q(segment=segment))
    best = None
    for policy in candidates:
        if not policy.currency and not policy.segment and not policy.is_default:
            continue
        score = (2 if policy.segment else 0) + (1 if policy.currency else 0)
        if best is None or score > best[0]:
            best = (score, policy)
    return best[1] if best else policy_default()


# --- history (smart timing) --------------------------------------------------------------------

def customer_success_instants(*, customer_id: int, before: datetime) -> list[datetime]:
    return list(PaymentAttempt.objects.filter(customer_id=customer_id, status=AttemptStatus.SUCCEEDED,
                                              completed_at__isnull=False, completed_at__lt=before)
                .order_by("completed_at").values_list("completed_at", flat=True)[:500])


def _tz(customer: Customer) -> ZoneInfo:
    try:
        return ZoneInfo(customer.timezone or "UTC")
    except Exception:  # noqa: BLE001 - validated on save; a bad legacy value falls back to UTC
        return ZoneInfo("UTC")


# --- opening and planning ----------------------------------------------------------------------

def _audit(action: str, case: DunningCase, *, rule: str, inputs: dict, actor=ACTOR) -> None:
    audit_record(action=action, obj=case, actor=actor_label(actor), actor_user=actor_user(actor), rule=rule,
                 inputs={"case": case.pk, "invoice": str(case.invoice_id), "customer": case.customer_id,
                         "customer_external_id": case.customer.external_id, "status": case.status,
                         "decline_class": case.decline_class, "decline_code": case.decline_code,
                         "amount_due": str(case.amount_due), "currency": case.currency, "at": dunning_now().isoformat(),
                         **inputs})


def _next_sequence(case: DunningCase, kind: str) -> int:
    return (case.steps.filter(kind=kind).aggregate(n=Max("sequence"))["n"] or 0) + 1


def _add_step(case: DunningCase, *, kind: str, at: datetime, rule: str, inputs: dict, template: str = "") -> DunningStep:
    return DunningStep.objects.create(case=case, kind=kind, sequence=_next_sequence(case, kind), scheduled_at=at,
                                      rule=rule, inputs=inputs, template=template)


def _retries_used(case: DunningCase) -> int:
    return case.steps.filter(kind=StepKind.RETRY).exclude(status=StepStatus.CANCELED).exclude(
        rule="new_payment_method").count()


def _plan_retries(case: DunningCase, classification: decline_codes.Classification, *, after: datetime) -> list[DunningStep]:
    policy = case.policy
    budget = policy.max_retries
    if classification.max_retries is not None:
        budget = min(budget, classification.max_retries)
    budget -= _retries_used(case)
    if budget <= 0 or not classification.retries_same_method:
        return []
    planned = schedule.retry_instants(
        first_failed_at=case.first_failed_at, tz=_tz(case.customer), days=list(policy.retry_days),
        max_retries=policy.max_retries, window_days=policy.retry_window_days, hour=case.retry_hour,
        payday=classification.payday and policy.payday_alignment, first_retry_hours=classification.first_retry_hours,
        min_wait_hours=classification.min_wait_hours, fixed_time_of_day=policy.fixed_time_of_day)
    steps = []
    for item in [p for p in planned if p.at > after][:budget]:
        steps.append(_add_step(case, kind=StepKind.RETRY, at=item.at, rule=item.rule,
                               inputs={**item.inputs, "decline_code": classification.code,
                                       "classification": classification.as_inputs(), "timing": case.timing_inputs}))
    return steps


def _email_template(case: DunningCase) -> str:
    return "payment_failed" if case.status == CaseStatus.OPEN else "update_payment_method"


def _plan_case(case: DunningCase, classification: decline_codes.Classification) -> list[DunningStep]:
    """All steps of a new case; the ones due at once (first e-mail, escalation of a hard decline) are
    returned for the caller to run after commit."""
    policy, start = case.policy, case.first_failed_at
    immediate = []
    _plan_retries(case, classification, after=start)
    for day in sorted(set(policy.email_days)):
        step = _add_step(case, kind=StepKind.EMAIL, at=start + timedelta(days=day), rule=f"email_day_{day}",
                         inputs={"day": day, "decline_code": case.decline_code}, template=_email_template(case))
        if day == 0:
            immediate.append(step)
    hard = classification.decline_class in (decline_codes.HARD, decline_codes.MERCHANT_FIX)
    escalate_at = start if hard else start + timedelta(days=policy.escalate_day)
    step = _add_step(case, kind=StepKind.ESCALATE, at=escalate_at,
                     rule="escalate_hard_decline" if hard else f"escalate_day_{policy.escalate_day}",
                     inputs={"day": 0 if hard else policy.escalate_day, "decline_code": case.decline_code})
    if hard:
        immediate.append(step)
    _add_step(case, kind=StepKind.FINAL, at=start + timedelta(days=policy.final_day), rule=f"final_day_{policy.final_day}",
              inputs={"day": policy.final_day, "final_action": policy.final_action})
    return immediate


def _run_after_commit(step_ids: list[int]) -> None:
    if not step_ids:
        return
    as_of = dunning_now()

    def run():
        with dunning_clock(as_of):
            for step_id in step_ids:
                dunning_step_run(step_id=step_id)

    transaction.on_commit(run)


def _case_open(*, invoice: Invoice, attempt: PaymentAttempt, classification: decline_codes.Classification) -> DunningCase:
    now = dunning_now()
    customer = invoice.customer
    policy = policy_for(customer=customer, currency=invoice.currency)
    tz = _tz(customer)
    hour, timing = (schedule.best_hour(customer_success_instants(customer_id=customer.pk, before=now), tz,
                                       policy.default_retry_hour)
                    if policy.smart_timing and not policy.fixed_time_of_day
                    else (policy.default_retry_hour, {"source": "policy", "hour": policy.default_retry_hour}))
    timing = {**timing, "timezone": str(tz)}
    status = CaseStatus.OPEN if classification.decline_class in (decline_codes.SOFT, decline_codes.MERCHANT_FIX) \
        else CaseStatus.ACTION_REQUIRED
    case = DunningCase.objects.create(
        invoice=invoice, customer=customer, subscription_id=invoice.subscription_id, policy=policy, status=status,
        decline_category=classification.decline_class, decline_code=classification.code,
        first_decline_code=classification.code, first_failed_at=now, opening_attempt=attempt,
        amount_due=invoice.amount_due, currency=invoice.currency, retry_hour=hour, timing_inputs=timing)
    immediate = _plan_case(case, classification)
    _audit("dunning.case_opened", case, rule="payment_failed",
           inputs={"attempt_number": attempt.attempt_number, "classification": classification.as_inputs(),
                   "advice_code": attempt.advice_code, "network_advice_code": attempt.network_advice_code,
                   "policy": policy.name, "history": timing,
                   "schedule": [{"kind": s.kind, "at": s.scheduled_at.isoformat(), "rule": s.rule}
                                for s in case.steps.order_by("scheduled_at", "pk")]})
    if status == CaseStatus.ACTION_REQUIRED:
        _audit("dunning.action_required", case, rule=f"decline_{classification.decline_class}",
               inputs={"attempt_number": attempt.attempt_number, "classification": classification.as_inputs()})
    _subscription_past_due(case, True)
    _run_after_commit([s.pk for s in immediate])
    return case


def _subscription_past_due(case: DunningCase, past_due: bool) -> None:
    if case.subscription_id is None:
        return

    sub = case.subscription
    if not past_due and DunningCase.objects.filter(subscription_id=sub.pk, status__in=LIVE_CASE_STATUSES).exclude(
            pk=case.pk).exists():
        return  # another invoice of the subscription is still in dunning
    wanted_from = SubscriptionStatus.ACTIVE if past_due else SubscriptionStatus.PAST_DUE
    sub.refresh_from_db(fields=["status"])
    if sub.status != wanted_from:
        return
    subscription_set_past_due(subscription=sub, past_due=past_due, actor=ACTOR,
                              reason=f"dunning case {case.pk}: {'payment failed' if past_due else case.close_reason}")


def _locked_live_case(invoice_id) -> DunningCase | None:
    return (DunningCase.objects.select_for_update(of=("self",)).select_related("policy", "customer")
            .filter(invoice_id=invoice_id, status__in=LIVE_CASE_STATUSES).first())


def _cancel_scheduled(case: DunningCase, *, kinds=None, reason: str) -> int:
    steps = case.steps.filter(status=StepStatus.SCHEDULED)
    if kinds:
        steps = steps.filter(kind__in=kinds)
    count = 0
    for step in steps.select_for_update():
        step.status, step.outcome = StepStatus.CANCELED, reason[:64]
        step.save(update_fields=["status", "outcome", "updated_at"])
        count += 1
    return count


def case_on_payment_failed(event) -> DunningCase | None:
    """`payment.failed` (inside the charge's transaction, the invoice locked): open the invoice's case,
    or record the decline on its open case and re-plan when the decline's class changed."""
    inputs = event.inputs or {}
    attempt = PaymentAttempt.objects.select_related("payment_method").filter(pk=event.object_id).first()
    if attempt is None:  # an event about no attempt of ours (only the payments service writes real ones)
        logger.warning("dunning: payment.failed for unknown attempt %s ignored", event.object_id)
        return None
    invoice = Invoice.objects.select_related("customer").get(pk=attempt.invoice_id)
    classification = decline_codes.classify(decline_code=attempt.decline_code, failure_code=attempt.failure_code,
                                            advice_code=attempt.advice_code,
                                            network_advice_code=attempt.network_advice_code)
    case = _locked_live_case(invoice.pk)
    if case is None:
        if invoice.status != InvoiceStatus.FINALIZED or invoice.amount_due <= 0:
            return None
        return _case_open(invoice=invoice, attempt=attempt, classification=classification)
    now = dunning_now()
    step = case.steps.filter(attempt=attempt).first()
    if step is not None:
        step.outcome, step.decline_code = "failed", classification.code
        step.save(update_fields=["outcome", "decline_code", "updated_at"])
    case.decline_code = classification.code
    case.decline_category = classification.decline_class
    fields = ["decline_code", "decline_category", "updated_at"]
    common = {"attempt_number": attempt.attempt_number, "classification": classification.as_inputs(),
              "advice_code": attempt.advice_code, "network_advice_code": attempt.network_advice_code,
              "retry_rule": step.rule if step else inputs.get("source", ""), "step": step.pk if step else None}
    after = []
    if classification.retries_same_method or classification.decline_class == decline_codes.MERCHANT_FIX:
        if case.status == CaseStatus.ACTION_REQUIRED and classification.retries_same_method:
            case.status = CaseStatus.OPEN  # a new method declined softly: it may be retried on the schedule
            fields.append("status")
            case.save(update_fields=fields)
            _plan_retries(case, classification, after=now)
        else:
            case.save(update_fields=fields)
    else:
        cancelled = _cancel_scheduled(case, kinds=[StepKind.RETRY], reason="decline_no_retry")
        if case.status != CaseStatus.ACTION_REQUIRED:
            case.status = CaseStatus.ACTION_REQUIRED
            fields.append("status")
        case.save(update_fields=fields)
        _audit("dunning.action_required", case, rule=f"decline_{classification.decline_class}",
               inputs={**common, "retries_canceled": cancelled})
        after.append(_add_step(case, kind=StepKind.EMAIL, at=now, rule="email_new_method_request",
                               inputs={"decline_code": classification.code}, template="update_payment_method"))
    _audit("dunning.retry_failed", case, rule=common["retry_rule"] or "charge", inputs=common)
    _run_after_commit([s.pk for s in after])
    return case


def step_on_payment_succeeded(event) -> None:
    """`payment.succeeded`: the retry step that charged it records the success."""
    payment = Payment.objects.filter(pk=event.object_id).only("attempt_id").first()
    if payment is None or payment.attempt_id is None:
        return
    for step in DunningStep.objects.select_for_update().filter(attempt_id=payment.attempt_id):
        step.outcome, step.decline_code = "succeeded", ""
        step.save(update_fields=["outcome", "decline_code", "updated_at"])


def _case_close(case: DunningCase, *, status: str, reason: str, action: str | None, inputs: dict) -> DunningCase:
    case.status = status
    case.closed_at = dunning_now()
    case.close_reason = reason[:64]
    case.save(update_fields=["status", "closed_at", "close_reason", "updated_at"])
    canceled = _cancel_scheduled(case, reason=f"case_{status}")
    _audit(action or f"dunning.case_{status}", case, rule=reason, inputs={**inputs, "steps_canceled": canceled})
    if status in (CaseStatus.RECOVERED, CaseStatus.CANCELED):
        _subscription_past_due(case, False)
    return case


def case_on_invoice_paid(event) -> DunningCase | None:
    """`invoice.paid`: a card retry, a manual payment or any other settlement recovers the case."""
    case = _locked_live_case(event.object_id)
    if case is None:
        return None
    return _case_close(case, status=CaseStatus.RECOVERED, reason=event.rule or "invoice_paid",
                       action="dunning.case_recovered",
                       inputs={"paid_by": event.rule, "last_payment": (event.inputs or {}).get("last_payment")})


def case_on_invoice_voided(event) -> DunningCase | None:
    case = _locked_live_case(event.object_id)
    if case is None:
        return None
    return _case_close(case, status=CaseStatus.CANCELED, reason="invoice_voided", action="dunning.case_canceled",
                       inputs={"voided_by": event.actor})


def case_on_credit_note(event) -> DunningCase | None:
    """`credit_note.issued`: a credit note that clears what is due closes the case."""
    invoice_id = (event.inputs or {}).get("invoice_id")
    if not invoice_id:
        return None
    case = _locked_live_case(invoice_id)
    if case is None:
        return None
    invoice = Invoice.objects.get(pk=invoice_id)
    if invoice.amount_due > 0:
        return None
    return _case_close(case, status=CaseStatus.CANCELED, reason="credit_note_cleared", action="dunning.case_canceled",
                       inputs={"credit_note": event.object_id, "credit_note_number": (event.inputs or {}).get("number")})


def cases_on_payment_method_attached(event) -> None:
    """`payment_method.attached` as the default: every live case of the customer is retried at once
    on the new method (after commit, outside the attach transaction)."""
    inputs = event.inputs or {}
    if not inputs.get("default"):
        return
    method = PaymentMethod.objects.get(pk=event.object_id)
    case_ids = list(DunningCase.objects.filter(customer_id=method.customer_id, status__in=LIVE_CASE_STATUSES)
                    .order_by("pk").values_list("pk", flat=True))
    if not case_ids:
        return
    as_of = dunning_now()

    def retry():
        with dunning_clock(as_of):
            for case_id in case_ids:
                dunning_retry_now(case_id=case_id, payment_method_id=method.pk, rule="new_payment_method",
                                  actor=event.actor_user or event.actor)

    transaction.on_commit(retry)


# --- running steps -----------------------------------------------------------------------------

def dunning_retry_now(*, case_id: int, payment_method_id: int | None = None, rule: str = "manual_retry",
                      actor=ACTOR) -> DunningStep | None:
    """Retry a live case now (a new payment method, finance's "retry now"): a retry step run at once."""
    now = dunning_now()
    with transaction.atomic():
        invoice_id = DunningCase.objects.values_list("invoice_id", flat=True).get(pk=case_id)
        row_lock(Invoice, invoice_id)
        case = row_lock(DunningCase, case_id)
        if case.status not in LIVE_CASE_STATUSES:
            raise ConflictError(f"Dunning case {case.pk} is {case.status}.", code="invalid_state",
                                fields={"status": [case.status]})
        step = _add_step(case, kind=StepKind.RETRY, at=now, rule=rule,
                         inputs={"payment_method": payment_method_id, "actor": actor_label(actor)})
    dunning_step_run(step_id=step.pk)
    step.refresh_from_db()
    return step


def dunning_step_run(*, step_id: int) -> str | None:
    """Run one due step once (see the module docstring). Returns its outcome, None when another
    run has it or had it."""
    now = dunning_now()
    attempt_id = email = None
    with transaction.atomic():
        row = DunningStep.objects.filter(pk=step_id).values("case_id", "case__invoice_id").first()
        if row is None:
            return None
        row_lock(Invoice, row["case__invoice_id"])
        case = row_lock(DunningCase, row["case_id"], related=("policy", "customer"))
        step = DunningStep.objects.select_for_update(skip_locked=True).filter(pk=step_id, status=StepStatus.SCHEDULED).first()
        if step is None:
            return None
        if case.status not in LIVE_CASE_STATUSES:
            return _finish(step, status=StepStatus.CANCELED, outcome=f"case_{case.status}", now=now)
        invoice = Invoice.objects.get(pk=case.invoice_id)
        handler = {StepKind.RETRY: _run_retry, StepKind.EMAIL: _run_email, StepKind.ESCALATE: _run_escalate,
                   StepKind.FINAL: _run_final}[step.kind]
        outcome, attempt_id, email = handler(step, case=case, invoice=invoice, now=now)
    if attempt_id is not None:
        attempt = payment_attempt_execute(attempt_id=attempt_id, actor=ACTOR)
        outcome = attempt.status
    if email:
        outcome = dunning_email_send(step_id=step_id)
    return outcome


def _finish(step: DunningStep, *, status: str, outcome: str, now: datetime, **extra) -> str:
    step.status, step.outcome, step.executed_at = status, outcome[:64], now
    for name, value in extra.items():
        setattr(step, name, value)
    step.save(update_fields=["status", "outcome", "executed_at", "updated_at", *extra])
    return outcome


def _later_due(step: DunningStep, now: datetime) -> bool:
    return step.case.steps.filter(kind=step.kind, status=StepStatus.SCHEDULED, scheduled_at__lte=now,
                                  scheduled_at__gt=step.scheduled_at).exists()


def _skip(step: DunningStep, case: DunningCase, *, reason: str, now: datetime, inputs: dict | None = None):
    _finish(step, status=StepStatus.SKIPPED, outcome=reason, now=now)
    _audit(f"dunning.{step.kind}_skipped", case, rule=reason,
           inputs={"step": step.pk, "sequence": step.sequence, "scheduled_at": step.scheduled_at.isoformat(),
                   **(inputs or {})})
    return reason, None, False


def _run_retry(step: DunningStep, *, case: DunningCase, invoice: Invoice, now: datetime):
    policy = case.policy
    ad_hoc = step.rule in ("new_payment_method", "manual_retry")
    if not ad_hoc:
        if case.status != CaseStatus.OPEN:
            return _skip(step, case, reason="action_required_no_retry", now=now)
        if now > case.first_failed_at + timedelta(days=policy.retry_window_days):
            return _skip(step, case, reason="retry_window_closed", now=now)
        if _later_due(step, now):
            return _skip(step, case, reason="superseded_by_later_retry", now=now)
    window_start = now - timedelta(days=policy.network_cap_days)
    recent = PaymentAttempt.objects.filter(invoice=invoice, created_at__gte=min(window_start, timezone.now() - timedelta(
        days=policy.network_cap_days))).count()
    if recent >= policy.network_cap_attempts:
        return _skip(step, case, reason="network_cap", now=now,
                     inputs={"attempts_in_window": recent, "cap": policy.network_cap_attempts,
                             "window_days": policy.network_cap_days})
    method = None
    if step.inputs.get("payment_method"):
        method = PaymentMethod.objects.filter(pk=step.inputs["payment_method"], detached_at__isnull=True).first()
    last_failed = PaymentAttempt.objects.filter(invoice=invoice, status=AttemptStatus.FAILED).order_by(
        "-attempt_number").first()
    if ad_hoc and case.status == CaseStatus.ACTION_REQUIRED and last_failed and method is not None \
            and last_failed.payment_method_id == method.pk:
        return _skip(step, case, reason="same_method_no_retry", now=now)
    if case.decline_code == "duplicate_transaction" and PaymentAttempt.objects.filter(
            invoice=invoice, status=AttemptStatus.SUCCEEDED).exists():
        return _skip(step, case, reason="duplicate_charge_succeeded", now=now)
    try:
        attempt = payment_attempt_create(invoice=invoice, payment_method=method, actor=ACTOR,
                                         rule=f"dunning_{step.rule}")
    except ConflictError as exc:
        return _skip(step, case, reason=exc.code if exc.code == NO_PAYMENT_METHOD else "charge_not_possible", now=now,
                     inputs={"error": exc.message})
    except ApplicationError as exc:
        return _skip(step, case, reason="charge_not_possible", now=now, inputs={"error": str(exc)})
    _finish(step, status=StepStatus.DONE, outcome="charging", now=now, attempt=attempt)
    _audit("dunning.retry_attempted", case, rule=step.rule,
           inputs={"step": step.pk, "retry_number": step.sequence, "attempt_number": attempt.attempt_number,
                   "decline_code": case.decline_code, "scheduled_at": step.scheduled_at.isoformat(),
                   "payment_method": attempt.payment_method_id, "history": case.timing_inputs,
                   "schedule_inputs": step.inputs})
    return "charging", attempt.pk, False


def _run_email(step: DunningStep, *, case: DunningCase, invoice: Invoice, now: datetime):
    if _later_due(step, now):
        return _skip(step, case, reason="superseded_by_later_email", now=now)
    if not step.template:
        step.template = _email_template(case)
    _finish(step, status=StepStatus.DONE, outcome="sending", now=now, template=step.template)
    return "sending", None, True


def _run_escalate(step: DunningStep, *, case: DunningCase, invoice: Invoice, now: datetime):
    reason = f"dunning: {step.rule} ({case.decline_code or 'declined'})"
    if not invoice.needs_review:
        invoice.needs_review = True
    invoice.review_reasons = [*invoice.review_reasons, {"code": "dunning_review", "message": reason}]
    invoice.save(update_fields=["needs_review", "review_reasons", "updated_at"])
    _finish(step, status=StepStatus.DONE, outcome="flagged_for_review", now=now)
    _audit("dunning.case_escalated", case, rule=step.rule,
           inputs={"step": step.pk, "decline_code": case.decline_code,
                   "retries_done": case.steps.filter(kind=StepKind.RETRY, status=StepStatus.DONE).count()})
    return "flagged_for_review", None, False


def _run_final(step: DunningStep, *, case: DunningCase, invoice: Invoice, now: datetime):
    effects = {}
    if invoice.status == InvoiceStatus.FINALIZED and invoice.amount_due > 0:
        invoice_mark_uncollectible(invoice=invoice, actor=ACTOR, reason=f"dunning case {case.pk}: {step.rule}")
        effects["invoice"] = "uncollectible"
    if case.subscription_id and case.policy.final_action == FinalAction.CANCEL_SUBSCRIPTION:
        effects["subscription"] = _cancel_subscription(case, now)
    else:
        effects["subscription"] = "kept" if case.subscription_id else None
    _finish(step, status=StepStatus.DONE, outcome="exhausted", now=now)
    _case_close(case, status=CaseStatus.EXHAUSTED, reason=step.rule, action="dunning.case_exhausted",
                inputs={"step": step.pk, "final_action": case.policy.final_action, "effects": effects,
                        "retries_done": case.steps.filter(kind=StepKind.RETRY, status=StepStatus.DONE).count()})
    return "exhausted", None, False


def _cancel_subscription(case: DunningCase, now: datetime) -> str:
    sub = case.subscription
    sub.refresh_from_db()
    if sub.status not in LIVE_STATUSES:
        return f"already {sub.status}"
    today = now.astimezone(_tz(case.customer)).date()
    for kwargs in ({"at": IMMEDIATELY, "today": today}, {"at": IMMEDIATELY}, {"at": PERIOD_END}):
        try:
            with transaction.atomic():
                subscription_cancel(subscription=sub, actor=ACTOR, **kwargs)
            return f"canceled ({kwargs['at']})"
        except ApplicationError as exc:
            logger.info("dunning case %s: cancel %s refused: %s", case.pk, kwargs, exc)
    return "cancel refused"


# --- the sweep ---------------------------------------------------------------------------------

def dunning_sweep(*, as_of: datetime | None = None, limit: int = 5000) -> dict:
    """Run every step due by `as_of` (default now), oldest first. Safe to rerun and to run twice at
    once: each step runs once (dunning_step_run)."""
    as_of = as_of or timezone.now()
    counts: dict[str, int] = {}
    with dunning_clock(as_of):
        ids = list(DunningStep.objects.filter(status=StepStatus.SCHEDULED, scheduled_at__lte=as_of)
                   .order_by("scheduled_at", "pk").values_list("pk", flat=True)[:limit])
        for step_id in ids:
            try:
                outcome = dunning_step_run(step_id=step_id)
            except Exception:  # noqa: BLE001 - one broken step must not stop the sweep; it stays scheduled
                logger.exception("dunning step %s failed", step_id)
                outcome = "error"
            if outcome is not None:
                counts[outcome] = counts.get(outcome, 0) + 1
    return counts
