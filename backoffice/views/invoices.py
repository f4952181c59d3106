"""The invoice workspace: list, detail (lines, tiers, PDF, payments, credit notes, history) and the
actions, each calling its invoicing service."""

from __future__ import annotations

import csv
from datetime import timedelta

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.clickjacking import xframe_options_sameorigin

from backoffice import selectors
from backoffice.forms import CreditNoteForm, PaymentForm, ReasonForm, ResendForm
from backoffice.roles import admin_required, viewer_required
from backoffice.views.base import form_errors, page, paginate, query_without_page, run_action
from backoffice.views.intel import anomalies_for_invoice
from backoffice.views.operations import describe_reason
from common.errors import ApplicationError
from common.money import DEFAULT_LOCALE, Formatter, format_money, format_money_display
from invoicing.credit_notes import credit_note_create, credit_note_remaining
from invoicing.emails import invoice_email_send
from invoicing.explanations import invoice_explanation
from invoicing.models import EmailStatus, Invoice, InvoiceStatus
from invoicing.pdf import invoice_pdf_bytes, invoice_pdf_filename, invoice_totals_rows, tier_wording
from invoicing.services import (
    invoice_approve,
    invoice_finalize,
    invoice_mark_uncollectible,
    invoice_void,
)
from payments.selectors import payment_methods_for

TIERED_MODELS = {"graduated", "volume"}
STATUS_CHOICES = [("", "any status"), ("review", "awaiting review")] + list(InvoiceStatus.choices)


def available_actions(invoice: Invoice) -> set[str]:
    """Which actions the page offers for this state (the services still check; this only hides buttons)."""
    status = invoice.status
    actions = set()
    if status == InvoiceStatus.DRAFT:
        actions |= {"finalize", "void", "edit"} | ({"approve"} if invoice.needs_review else set())
    if status in (InvoiceStatus.FINALIZED, InvoiceStatus.UNCOLLECTIBLE):
        actions |= {"pay", "resend"} | ({"void"} if invoice.amount_paid == 0 else set())
    if status == InvoiceStatus.FINALIZED and invoice.amount_due > 0:
        actions.add("charge")
    if status == InvoiceStatus.FINALIZED:
        actions |= {"credit", "uncollectible"}
    if status == InvoiceStatus.PAID:
        actions |= {"credit", "resend"}
    return actions


@viewer_required
def invoices(request):
    filters = {k: request.GET.get(k, "").strip() for k in ("q", "status", "currency", "customer", "due")}
    rows = paginate(request, selectors.invoices_page(**filters, today=timezone.localdate()))
    context = {"rows": rows, "filters": filters, "query": query_without_page(request), "statuses": STATUS_CHOICES,
               "currencies": Invoice.objects.order_by().values_list("currency", flat=True).distinct()}
    if request.htmx and request.htmx.target == "invoice-table":
        return render(request, "backoffice/partials/invoice_table.html", context)
    return page(request, "backoffice/invoices.html", "invoices", **context)


def _formatter(invoice: Invoice) -> Formatter:
    return Formatter(currency=invoice.currency, locale=DEFAULT_LOCALE)


CSV_COLUMNS = ["number", "status", "customer", "customer_name", "subscription", "currency", "issue_date", "due_date",
               "period_start", "period_end_inclusive", "subtotal", "discount", "tax", "total", "amount_paid", "amount_due"]


def _cell(text: str) -> str:
    """Text that a spreadsheet would run as a formula is quoted (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@viewer_required
def invoices_csv(request):
    """The filtered invoice list as CSV: amounts as the API writes them ("720.00", "1500"), periods
    inclusive as on the documents."""
    filters = {k: request.GET.get(k, "").strip() for k in ("q", "status", "currency", "customer", "due")}
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="invoices-{timezone.localdate().isoformat()}.csv"'
    writer = csv.writer(response)
    writer.writerow(CSV_COLUMNS)
    for inv in selectors.invoices_page(**filters, today=timezone.localdate()).iterator(chunk_size=1000):
        cur = inv.currency
        last = inv.period_end - timedelta(days=1) if inv.period_end else None
        writer.writerow([inv.number or "", inv.status, _cell(inv.customer.external_id), _cell(inv.customer.name),
                         _cell(inv.subscription.external_id) if inv.subscription_id else "", cur, inv.issue_date,
                         inv.due_date or "", inv.period_start or "", last or "",
                         *(format_money(getattr(inv, f), cur) for f in
                           ("subtotal", "discount", "tax", "total", "amount_paid", "amount_due"))])
    return response


def _lines(invoice: Invoice) -> list[dict]:
    fmt = _formatter(invoice)
    rows = []
    for line in invoice.lines.order_by("position", "id"):
        model = (line.metadata or {}).get("model")
        # The tier table is for tiered models; other models' breakdowns (percentage: rate and fixed
        # fee) read better as the sentence alone.
        rows.append({"line": line, "tiers": line.tiers if model in TIERED_MODELS else [],
                     "tier_text": tier_wording(line.tiers, model=model, fmt=fmt) if line.tiers else ""})
    return rows


@viewer_required
def invoice(request, pk):
    obj = get_object_or_404(Invoice.objects.select_related("customer", "subscription", "billing_run"), pk=pk)
    remaining = credit_note_remaining(obj) if obj.status in (InvoiceStatus.FINALIZED, InvoiceStatus.PAID) else None
    return page(
        request, "backoffice/invoice.html", "invoices", invoice=obj, lines=_lines(obj), totals=invoice_totals_rows(obj, fmt=_formatter(obj)), tz=obj.customer.timezone,
        actions=available_actions(obj),
        payments=obj.payments_received.select_related("attempt__payment_method").order_by("-created_at"),
        attempts=obj.payment_attempts.select_related("payment_method").order_by("-attempt_number"),
        payment_methods=payment_methods_for(customer=obj.customer), explanation=invoice_explanation(invoice=obj),
        credit_notes=obj.credit_notes.order_by("-issue_date"), emails=obj.emails.order_by("-created_at")[:20],
        history=selectors.invoice_history(invoice=obj), creditable=remaining["total"] if remaining else None,
        payment_form=PaymentForm(), credit_form=CreditNoteForm(), reason_form=ReasonForm(), resend_form=ResendForm(),
        **_review_context(obj))


def _review_context(obj: Invoice) -> dict:
    """A draft's review reasons with their evidence, its open anomalies (kind, score, baseline inputs)
    and the lines a price override can re-rate."""
    from backoffice.views.drafts import repriceable_lines  # noqa: PLC0415 — cycle: backoffice.views.drafts imports this module

    return {"reasons": [describe_reason(r) for r in (obj.review_reasons or []) if isinstance(r, dict)],
            "anomalies": anomalies_for_invoice(obj),
            "repriceable": repriceable_lines(obj) if obj.status == InvoiceStatus.DRAFT else []}


@viewer_required
@xframe_options_sameorigin
def invoice_pdf(request, pk):
    """The PDF inline (stored document of an issued invoice; a watermarked preview of a draft)."""
    obj = get_object_or_404(Invoice, pk=pk)
    response = HttpResponse(invoice_pdf_bytes(invoice=obj), content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{invoice_pdf_filename(obj)}"'
    return response


def _invoice(pk) -> Invoice:
    return get_object_or_404(Invoice, pk=pk)


def _back(request, obj: Invoice) -> str:
    nxt = request.POST.get("next", "")
    return nxt if nxt.startswith("/") and not nxt.startswith("//") else reverse("backoffice:invoice", args=[obj.pk])


def _label(obj: Invoice) -> str:
    return obj.number or "the draft"


@admin_required
def invoice_approve_view(request, pk):
    obj = _invoice(pk)
    return run_action(request, lambda: f"Approved and finalized as {invoice_approve(invoice=obj, actor=request.user).number}.",
                      back=_back(request, obj))


@admin_required
def invoice_finalize_view(request, pk):
    obj = _invoice(pk)
    return run_action(request, lambda: f"Finalized as {invoice_finalize(invoice=obj, actor=request.user).number}.",
                      back=_back(request, obj))


@admin_required
def invoice_void_view(request, pk):
    obj = _invoice(pk)
    form = ReasonForm(request.POST)
    form.is_valid()
    reason = form.cleaned_data.get("reason", "")
    return run_action(request, lambda: f"Voided {_label(invoice_void(invoice=obj, actor=request.user, reason=reason))}.",
                      back=_back(request, obj))


@admin_required
def invoice_uncollectible_view(request, pk):
    obj = _invoice(pk)
    form = ReasonForm(request.POST)
    form.is_valid()
    reason = form.cleaned_data.get("reason", "")

    def act():
        done = invoice_mark_uncollectible(invoice=obj, actor=request.user, reason=reason)
        return f"Marked {done.number} uncollectible ({format_money_display(done.amount_due, done.currency)} written off)."
    return run_action(request, act, back=_back(request, obj))


@admin_required
def invoice_credit_view(request, pk):
    obj = _invoice(pk)
    form = CreditNoteForm(request.POST)

    def act():
        if not form.is_valid():
            raise ApplicationError(form_errors(form))
        data = form.cleaned_data
        note = credit_note_create(invoice=obj, amount=data["amount"], reason=data["reason"],
                                  outcome=data.get("outcome") or None, actor=request.user)
        return (f"Issued credit note {note.number} for {format_money_display(note.total, note.currency)} "
                f"({note.get_outcome_display()}).")
    return run_action(request, act, back=_back(request, obj))


@admin_required
def invoice_resend_view(request, pk):
    obj = _invoice(pk)
    form = ResendForm(request.POST)

    def act():
        if not form.is_valid():
            raise ApplicationError(form_errors(form))
        log = invoice_email_send(invoice=obj, actor=request.user, to=form.cleaned_data.get("to") or None)
        if log.status != EmailStatus.SENT:
            raise ApplicationError(f"The e-mail was not sent: {log.error or log.status}.")
        return f"Sent {obj.number} to {log.to}."
    return run_action(request, act, back=_back(request, obj))
