"""Edit and approve a flagged draft (the review queue): a one-off credit for the customer or a price
override on one charge for the draft's period, each through `invoicing.draft_edits` (which calls
`customers.services.prepaid_credit_grant` / `catalog.services.plan_version_override_create` and the
rating engine); the page then shows the recomputed draft, ready to approve."""

from __future__ import annotations

from django.shortcuts import get_object_or_404

from backoffice.forms import DraftCreditForm, DraftRepriceForm
from backoffice.roles import admin_required
from backoffice.views.base import form_errors, run_action
from backoffice.views.invoices import _back
from common.errors import ApplicationError
from common.money import format_money_display
from invoicing.draft_edits import invoice_draft_credit, invoice_draft_reprice
from invoicing.models import Invoice, InvoiceLine


def repriceable_lines(invoice: Invoice) -> list[InvoiceLine]:
    """The draft's usage lines rated by a charge (what a price override can re-rate)."""
    return list(invoice.lines.filter(kind="usage", charge__isnull=False).select_related("charge__billable_metric")
                .order_by("position", "pk"))


def _change(before, after, currency) -> str:
    return f"{format_money_display(before, currency)} → {format_money_display(after, currency)}"


@admin_required
def draft_credit_view(request, pk):
    obj = get_object_or_404(Invoice, pk=pk)
    form = DraftCreditForm(request.POST)

    def act():
        if not form.is_valid():
            raise ApplicationError(form_errors(form))
        before = obj.amount_due
        grant, draft = invoice_draft_credit(invoice=obj, amount=form.cleaned_data["amount"],
                                            reason=form.cleaned_data["reason"], actor=request.user)
        return (f"Granted {format_money_display(grant.amount, grant.currency)} of prepaid credit to "
                f"{draft.customer.name}; the draft's amount due is now {_change(before, draft.amount_due, draft.currency)}.")
    return run_action(request, act, back=_back(request, obj))


@admin_required
def draft_reprice_view(request, pk):
    obj = get_object_or_404(Invoice, pk=pk)
    form = DraftRepriceForm(request.POST)

    def act():
        if not form.is_valid():
            raise ApplicationError(form_errors(form))
        data = form.cleaned_data
        line = InvoiceLine.objects.select_related("charge").filter(pk=data["line"], invoice=obj).first()
        if line is None or line.charge is None:
            raise ApplicationError("line: not a usage line of this draft.")
        properties = data.get("properties") or None
        model = data.get("model") or None
        if properties is None:
            if (model or line.charge.model) != "standard":
                raise ApplicationError(f"unit_amount: a {line.charge.model} charge needs its properties, not a unit price.")
            properties = {**line.charge.properties, "unit_amount": f"{data['unit_amount']:f}"}
        before = obj.total
        draft = invoice_draft_reprice(invoice=obj, line=line, properties=properties, model=model,
                                      actor=request.user)
        return (f"Repriced {line.charge.billable_metric.code} for this "
                f"period; the draft's total is now {_change(before, draft.total, draft.currency)}.")
    return run_action(request, act, back=_back(request, obj))
