"""Edit a draft before approving it (the review queue's "edit and approve", issue 18).

Two corrections finance makes to a flagged draft, each through the services that own the money:

- **A one-off credit** (`invoice_draft_credit`): prepaid credit granted to the customer in the
  draft's currency (`customers.services.prepaid_credit_grant`, with the draft named in the reason).
  Finalize applies prepaid credit to the invoice it finalizes (DESIGN.md §3 order: lines → coupons
  → tax → credit balance → prepaid credits), so approving the draft right after spends it there.
- **A price override for this period** (`invoice_draft_reprice`): a private plan version for the
  customer (`catalog.services.plan_version_override_create`, the API's price-override record) whose
  charge replaces one charge of the draft's version; the draft's usage lines rated by that charge
  are re-rated with the real rating engine (`catalog.rating.rate_charge`) on the quantity and event
  count they were billed with, and point at the override's charge (so the explanation, the
  simulation's self-check and the audit trail see the price actually used). The subscription stays
  on its version: the override is for this draft's period only (a lasting one is the API's
  `price_overrides`, which starts at a date not yet invoiced).

Both then refresh the draft's totals (`invoice_draft_totals_refresh`): the same preview the billing
run gives a draft (coupons, tax, credit balance and prepaid credit as they stand, no locks, nothing
consumed); finalize recomputes them under locks as always.

Late-usage lines (usage of earlier periods arriving late) keep the price they were billed with.
Not re-rated here (409, with the reason): charges that price each event (percentage with free
events or per-event minimum/maximum need the events themselves), and versions with a minimum
commitment (the true-up depends on the whole window's subtotal)."""

from __future__ import annotations

from django.db import transaction

from common.audit import actor_label, actor_user, audit_record
from common.errors import ApplicationError, ConflictError
from common.money import format_money
from invoicing.models import Invoice, InvoiceLine, InvoiceStatus, LineKind
from invoicing.totals import TotalsPreview, line_discountable

REPRICEABLE_KINDS = (LineKind.USAGE,)


def _locked_draft(invoice: Invoice) -> Invoice:
    invoice = (Invoice.objects.select_for_update(of=("self",))
               .select_related("customer", "subscription").get(pk=invoice.pk))
    if invoice.status != InvoiceStatus.DRAFT:
        raise ConflictError(f"Only a draft can be edited; this invoice is {invoice.status}.", code="invalid_state")
    return invoice


def _refresh(invoice: Invoice) -> dict:
    """Recompute a (locked) draft's preview totals from its lines; returns the changed money as text."""
    before = {"subtotal": invoice.subtotal, "total": invoice.total, "amount_due": invoice.amount_due}
    lines = [(amount, taxable, line_discountable(kind, amount))
             for amount, taxable, kind in invoice.lines.values_list("amount", "taxable", "kind")]
    totals = TotalsPreview([invoice.customer_id]).totals(invoice=invoice, customer=invoice.customer,
                                                         subscription=invoice.subscription, lines=lines)
    fields = totals.as_fields()
    for name, value in fields.items():
        setattr(invoice, name, value)
    invoice.save(update_fields=[*fields, "updated_at"])
    cur = invoice.currency
    return {name: {"from": format_money(old, cur), "to": format_money(getattr(invoice, name), cur)}
            for name, old in before.items()}


def invoice_draft_totals_refresh(*, invoice: Invoice, actor=None) -> Invoice:
    """Recompute a draft's preview totals (coupons, tax and credits as they stand now)."""
    with transaction.atomic():
        invoice = _locked_draft(invoice)
        changed = _refresh(invoice)
        audit_record(action="invoice.draft_refreshed", obj=invoice, actor=actor_label(actor),
                     actor_user=actor_user(actor), rule="manual", inputs={"totals": changed})
    return invoice


def invoice_draft_credit(*, invoice: Invoice, amount, reason: str, actor=None):
    """Grant the draft's customer a one-off prepaid credit in the draft's currency and show it on the
    draft. Returns (grant, refreshed draft)."""
    from customers.services import prepaid_credit_grant

    if not (reason or "").strip():
        raise ApplicationError("A reason is required.", fields={"reason": ["required"]})
    with transaction.atomic():
        invoice = _locked_draft(invoice)
        grant = prepaid_credit_grant(customer=invoice.customer, currency=invoice.currency, amount=amount,
                                     reason=f"{reason.strip()} (draft {str(invoice.pk)[:8]})", actor=actor)
        changed = _refresh(invoice)
        audit_record(action="invoice.draft_credited", obj=invoice, actor=actor_label(actor),
                     actor_user=actor_user(actor), rule="review_queue.edit",
                     inputs={"credit_grant": grant.pk, "amount": format_money(grant.amount, grant.currency),
                             "reason": grant.reason, "totals": changed})
    return grant, invoice


def _charge_description(charge, rated) -> str:
    name = charge.invoice_display_name or charge.billable_metric.name
    return f"{name}: {rated.description}"[:500]


def invoice_draft_reprice(*, invoice: Invoice, line: InvoiceLine, properties: dict, model: str | None = None,
                          actor=None) -> Invoice:
    """Override the price of the charge that rated `line` for this draft's period: a private plan
    version for the customer with that charge's `properties` (and `model`, default unchanged) replaced,
    validated like POST /plans/, and every usage line of the draft rated by the charge re-rated with it."""
    from catalog.rating import needs_event_values, rate_charge
    from catalog.services import plan_version_override_create

    if not isinstance(properties, dict) or not properties:
        raise ApplicationError("Give the charge's new properties.", fields={"properties": ["required"]})
    with transaction.atomic():
        invoice = _locked_draft(invoice)
        line = (InvoiceLine.objects.select_related("charge__billable_metric", "plan_version__plan")
                .filter(pk=line.pk, invoice=invoice).first())
        if line is None:
            raise ApplicationError("That line is not on this draft.", fields={"line": ["not on this draft"]})
        if line.kind not in REPRICEABLE_KINDS or line.charge_id is None:
            raise ApplicationError("Only a usage line rated by a charge can be repriced.",
                                   fields={"line": [f"a {line.kind} line"]})
        old_charge, version = line.charge, line.plan_version
        model = model or old_charge.model
        if version.minimum_commitment:
            raise ConflictError("This plan has a minimum commitment, whose true-up depends on the whole period: "
                                "grant a credit instead.", code="minimum_commitment", fields={"line": ["minimum commitment"]})
        if needs_event_values(model=model, properties=properties) or needs_event_values(
                model=old_charge.model, properties=old_charge.properties):
            raise ConflictError("This charge prices each event (free events or per-event limits), which needs the "
                                "events themselves: grant a credit instead.", code="per_event_charge",
                                fields={"properties": ["prices each event"]})
        charges = []
        position = None
        for index, charge in enumerate(version.charges.select_related("billable_metric").order_by("position", "pk")):
            item = {"billable_metric": charge.billable_metric.code, "model": charge.model,
                    "properties": charge.properties, "invoice_display_name": charge.invoice_display_name}
            if charge.pk == old_charge.pk:
                item["model"], item["properties"], position = model, properties, index
            charges.append(item)
        override = plan_version_override_create(base_version=version, customer=invoice.customer, charges=charges,
                                                actor=actor)
        new_charge = override.charges.select_related("billable_metric").order_by("position", "pk")[position]
        repriced = []
        for ln in invoice.lines.filter(charge=old_charge, kind__in=REPRICEABLE_KINDS).order_by("position", "pk"):
            count = int((ln.metadata or {}).get("event_count") or 0)
            rated = rate_charge(charge=new_charge, quantity=ln.quantity, currency=invoice.currency, event_count=count)
            repriced.append({"line": ln.pk, "quantity": str(ln.quantity), "from": format_money(ln.amount, invoice.currency),
                             "to": format_money(rated.amount, invoice.currency)})
            ln.charge, ln.plan_version = new_charge, override
            ln.amount, ln.unit_amount = rated.amount, rated.unit_amount
            ln.tiers = [t.as_dict() for t in rated.tiers]
            ln.description = _charge_description(new_charge, rated)
            ln.metadata = {**(ln.metadata or {}), "model": new_charge.model,
                           "price_override": {"plan_version": override.pk, "replaced_charge": old_charge.pk,
                                              "amount_before": repriced[-1]["from"]}}
            ln.save(update_fields=["charge", "plan_version", "amount", "unit_amount", "tiers", "description", "metadata"])
        changed = _refresh(invoice)
        audit_record(action="invoice.draft_repriced", obj=invoice, actor=actor_label(actor),
                     actor_user=actor_user(actor), rule="review_queue.edit",
                     inputs={"plan_version": override.pk, "version": override.version, "charge": new_charge.pk,
                             "model": model, "properties": properties, "lines": repriced, "totals": changed})
    return invoice

