"""Review queue, billing runs and dead letters."""

from __future__ import annotations

from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone

from backoffice.forms import BillingRunForm
from backoffice.roles import admin_required, viewer_required
from backoffice.selectors import dead_letters_open
from backoffice.views.base import form_errors, page, paginate, query_without_page, run_action
from backoffice.views.intel import anomalies_for_invoice
from common.errors import ApplicationError
from invoicing.billing_run import billing_run_enqueue
from invoicing.models import BillingRun, BillingRunStatus, Invoice, InvoiceStatus
from usage.models import DeadLetterEvent, RejectReason
from usage.services.dead_letters import dead_letter_replay

REVIEW_RULES = {
    "total_over_3x_previous_invoice": "Total is more than 3× the previous invoice",
    "zero_usage_after_usage": "No usage this period after usage in the previous one",
    "subscription_change.invoice_now": "Invoiced immediately after a subscription change",
    "anomaly.invoice_spike": "Usage raised the total past 3× the recent invoices (like for like)",
    "anomaly.spike": "A usage spike in this period (anomaly detection)",
}


MONEY_EVIDENCE = {"total", "previous_total", "amount", "previous_amount", "recent_invoices_median", "usage",
                  "recent_usage_median"}
INVOICE_EVIDENCE = {"previous_invoice"}


def describe_reason(reason: dict) -> dict:
    """A review reason as finance reads it: a sentence and its evidence (the flagging rule's inputs),
    each piece labelled and typed: money is formatted, a previous invoice is linked."""
    rule = reason.get("rule", "")
    evidence = []
    for key, value in reason.items():
        if key == "rule":
            continue
        kind = "money" if key in MONEY_EVIDENCE else "invoice" if key in INVOICE_EVIDENCE else "text"
        evidence.append({"label": key.replace("_", " ").capitalize(), "value": value, "kind": kind})
    return {"rule": rule, "text": REVIEW_RULES.get(rule, rule.replace("_", " ")), "evidence": evidence}


@viewer_required
def review_queue(request):
    drafts = (Invoice.objects.filter(status=InvoiceStatus.DRAFT, needs_review=True)
              .select_related("customer", "subscription").order_by("billing_date", "created_at"))
    rows = paginate(request, drafts)
    items = [{"invoice": inv, "reasons": [describe_reason(r) for r in (inv.review_reasons or []) if isinstance(r, dict)],
              "anomalies": anomalies_for_invoice(inv)}
             for inv in rows]
    return page(request, "backoffice/review.html", "review", rows=rows, items=items, query=query_without_page(request))


def _runs_context(request):
    """Polls every 2 s while a run is running; right after a start it also waits (up to ~30 s) for the
    worker to pick the run up, counting down in `wait`."""
    runs = paginate(request, BillingRun.objects.order_by("-started_at", "-id"), size=25)
    running = any(r.status in (BillingRunStatus.QUEUED, BillingRunStatus.RUNNING) for r in runs)
    try:
        wait = max(0, min(15, int(request.GET.get("wait", "15" if request.GET.get("started") == "1" else "0"))))
    except ValueError:
        wait = 0
    return {"runs": runs, "polling": running or wait > 0, "wait": 0 if running else max(0, wait - 1)}


@viewer_required
def billing_runs(request):
    context = _runs_context(request)
    if request.htmx:
        return render(request, "backoffice/partials/run_table.html", context)
    return page(request, "backoffice/billing_runs.html", "billing_runs", form=BillingRunForm(
        initial={"as_of": timezone.localdate()}), **context)


@viewer_required
def billing_run_detail(request, pk: int):
    run = get_object_or_404(BillingRun, pk=pk)
    invoices = run.invoices.select_related("customer").order_by("customer__name")[:200]
    return page(request, "backoffice/billing_run.html", "billing_runs", run=run, invoices=invoices)


@admin_required
def billing_run_start(request):
    """Start a billing run for a date: the asynchronous form (a queued run handed to the workers after
    commit, credited to the user); the page polls the run's progress."""
    form = BillingRunForm(request.POST)

    def act():
        if not form.is_valid():
            raise ApplicationError(form_errors(form))
        run = billing_run_enqueue(as_of=form.cleaned_data["as_of"], actor=request.user)
        return f"Billing run #{run.pk} up to {run.as_of.isoformat()} started."
    return run_action(request, act, back=reverse("backoffice:billing_runs") + "?started=1")


@viewer_required
def dead_letters(request):
    reason = request.GET.get("reason", "")
    state = request.GET.get("state", "open")
    qs = dead_letters_open() if state == "open" else DeadLetterEvent.objects.all()
    if reason:
        qs = qs.filter(reason=reason)
    rows = paginate(request, qs.order_by("-received_at", "-id"))
    return page(request, "backoffice/dead_letters.html", "dead_letters", rows=rows, reason=reason, state=state,
                reasons=RejectReason.choices, query=query_without_page(request))


@admin_required
def dead_letter_replay_view(request, pk: int):
    letter = get_object_or_404(DeadLetterEvent, pk=pk)

    def act():
        done = dead_letter_replay(dead_letter=letter, actor=request.user)
        if not done.is_resolved:
            raise ApplicationError(f"Replay of dead letter {done.pk} rejected again: {done.replay_message}")
        return f"Replayed dead letter {done.pk}: {done.replay_status}."
    return run_action(request, act, back=reverse("backoffice:dead_letters") + "?" + request.POST.get("query", ""))
