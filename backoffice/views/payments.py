"""Payments (payments app): the list with filters and CSV, a payment's detail (its charge attempt,
decline codes, refunds, dispute), and the invoice actions that collect through the payments
service: record a payment received outside Stripe (`payment_record_manual`) and retry the charge
now (`payment_charge_invoice`, what POST /api/v1/invoices/{id}/pay/ calls)."""

from __future__ import annotations

import csv
from datetime import date

from django.http import HttpResponse
from django.shortcuts import get_object_or_404

from backoffice import selectors
from backoffice.forms import PaymentForm, RetryChargeForm
from backoffice.roles import admin_required, viewer_required
from backoffice.views.base import form_errors, page, paginate, query_without_page, run_action
from backoffice.views.invoices import _back, _invoice
from common.errors import ApplicationError
from common.models import AuditEvent
from common.money import format_money, format_money_display
from payments.models import AttemptStatus, Payment, PaymentKind, PaymentMethod, PaymentStatus
from payments.services import payment_charge_invoice, payment_record_manual

FILTERS = ("status", "method", "customer", "currency", "q", "from", "to")


def _filters(request) -> tuple[dict, dict, list[str]]:
    filters = {k: request.GET.get(k, "").strip() for k in FILTERS}
    errors, bounds = [], {}
    for key, name in (("from", "start"), ("to", "end")):
        if filters[key]:
            try:
                bounds[name] = date.fromisoformat(filters[key])
            except ValueError:
                errors.append(f"{key}: not a date (YYYY-MM-DD)")
    args = {k: filters[k] for k in ("status", "method", "customer", "currency", "q")}
    return filters, {**args, **bounds}, errors


@viewer_required
def payments(request):
    filters, args, errors = _filters(request)
    rows = selectors.payments_page(**args)
    return page(request, "backoffice/payments.html", "payments", rows=paginate(request, rows), filters=filters,
                errors=errors, statuses=PaymentStatus.choices, methods=PaymentKind.choices,
                currencies=selectors.invoice_currencies(), query=query_without_page(request))


CSV_COLUMNS = ["id", "created_at", "paid_on", "customer", "invoice", "status", "method", "currency", "amount",
               "amount_applied", "amount_refunded", "disputed_amount", "reference", "stripe_payment_intent",
               "failure_code", "decline_code", "recorded_by"]


@viewer_required
def payments_csv(request):
    _, args, _ = _filters(request)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="payments.csv"'
    writer = csv.writer(response, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for p in selectors.payments_page(**args).iterator(chunk_size=500):
        cur = p.currency
        writer.writerow([p.pk, p.created_at.isoformat(), p.paid_on or "", p.customer.external_id, p.invoice.number or "",
                         p.status, p.method, cur, format_money(p.amount, cur), format_money(p.amount_applied, cur),
                         format_money(p.amount_refunded, cur), format_money(p.disputed_amount, cur), p.reference,
                         p.stripe_payment_intent, p.failure_code, p.decline_code, p.recorded_by])
    return response


@viewer_required
def payment(request, pk):
    obj = get_object_or_404(Payment.objects.select_related("customer", "invoice", "attempt__payment_method"), pk=pk)
    events = list(AuditEvent.objects.filter(object_id__in=[str(obj.pk), str(obj.attempt_id or "")])
                  .filter(action__regex=r"^(payment|refund)\.").order_by("-created_at")[:40])
    return page(request, "backoffice/payment.html", "payments", payment=obj, refunds=obj.refunds.order_by("-created_at"),
                tz=obj.customer.timezone, history=events,
                attempts=obj.invoice.payment_attempts.select_related("payment_method").order_by("-attempt_number"))


@admin_required
def invoice_pay_view(request, pk):
    """Record a payment received outside Stripe through the payments service."""
    obj = _invoice(pk)
    form = PaymentForm(request.POST)

    def act():
        if not form.is_valid():
            raise ApplicationError(form_errors(form))
        data = form.cleaned_data
        done = payment_record_manual(invoice=obj, amount=data.get("amount"), paid_on=data.get("paid_on"),
                                     method=data.get("method") or PaymentKind.BANK_TRANSFER,
                                     reference=data.get("reference", ""), actor=request.user)
        obj.refresh_from_db()
        return (f"Recorded a {done.get_method_display()} payment of {format_money_display(done.amount, done.currency)} "
                f"on {obj.number}; {format_money_display(obj.amount_due, obj.currency)} remains due ({obj.status}).")
    return run_action(request, act, back=_back(request, obj))


@admin_required
def invoice_charge_view(request, pk):
    """Retry the charge now on the customer's default (or a chosen) card: the payments service
    behind POST /api/v1/invoices/{id}/pay/. A decline is shown with its codes."""
    obj = _invoice(pk)
    form = RetryChargeForm(request.POST)

    def act():
        if not form.is_valid():
            raise ApplicationError(form_errors(form))
        method = None
        if form.cleaned_data.get("payment_method"):
            method = PaymentMethod.objects.filter(pk=form.cleaned_data["payment_method"], customer_id=obj.customer_id,
                                                  detached_at__isnull=True).first()
            if method is None:
                raise ApplicationError("payment_method: unknown payment method for this customer.")
        attempt = payment_charge_invoice(invoice=obj, payment_method=method, actor=request.user)
        amount = format_money_display(attempt.amount, attempt.currency)
        if attempt.status == AttemptStatus.SUCCEEDED:
            return f"Charged {amount} to {attempt.payment_method} (attempt {attempt.attempt_number}): {obj.number} is paid."
        if attempt.status == AttemptStatus.PENDING:
            return f"The charge of {amount} (attempt {attempt.attempt_number}) is pending at the processor."
        codes = ", ".join(c for c in (attempt.failure_code, attempt.decline_code, attempt.advice_code) if c)
        raise ApplicationError(f"The charge of {amount} on {attempt.payment_method} was declined "
                               f"(attempt {attempt.attempt_number}: {codes}). {attempt.failure_message}".strip())
    return run_action(request, act, back=_back(request, obj))
