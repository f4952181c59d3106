"""Invoice and credit note documents (DESIGN.md §6): HTML templates rendered to PDF with WeasyPrint.

A finalized document renders **only** from what the invoice froze at finalize: `customer_snapshot`
(billing details and the seller), its own stored fields (number, dates, totals, discount and tax
lines, credits) and its immutable lines. Live customer data is read for one thing only: the preview
of a draft (watermarked "DRAFT", no number), which has no snapshot yet.

Money is `Decimal` end to end. Amounts are quantized to the currency's exponent and formatted with
babel in a locale taken from the customer's country (`$720.00`, `1.234,56 €`, `¥1,500`); unit prices
keep their own precision (`$0.000125`). Dates are English medium dates ("Mar 5, 2026"), matching the
English labels. Service periods are stored half-open and shown inclusive (end − 1 day, API.md)."""

from __future__ import annotations

import atexit
import logging
import threading
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

from babel.dates import format_date
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import strip_spaces_between_tags

from common.errors import ConflictError
from common.locks import row_lock
from common.money import Formatter, document_locale, money_decimal as _dec, quantize_money  # noqa: F401 (re-exported)
from invoicing.explanations import invoice_explanation
from invoicing.models import CreditNote, CreditNoteOutcome, CreditNoteStatus, Invoice, InvoiceStatus, LineKind
from invoicing.pdf_canvas import NotDrawable, render_invoice_canvas
from invoicing.services import customer_snapshot

# WeasyPrint subsets fonts with fontTools inside its own log capture, which lowers the fontTools
# logger to DEBUG; without this every embedded font table would reach the root handler.
logging.getLogger("fontTools").propagate = False

ZERO = Decimal(0)
STYLESHEET = Path(settings.BASE_DIR) / "static" / "invoicing" / "documents.css"

# Line groups in the order they appear on the document.
KIND_HEADINGS = {
    LineKind.SUBSCRIPTION: "Subscription",
    LineKind.PRORATION: "Prorations",
    LineKind.USAGE: "Usage",
    LineKind.MINIMUM_COMMITMENT: "Minimum commitment",
    LineKind.LATE_USAGE: "Late usage",
    LineKind.CREDIT: "Credits",
    LineKind.ADJUSTMENT: "Adjustments",
}

PAYMENT_TERMS_BANK = "send_invoice"
PAYMENT_TERMS_CARD = "charge_automatically"


# --- formatting (money: common.money.Formatter, shared with the back office) -------------------

def format_day(value: date | None) -> str:
    return format_date(value, format="medium", locale="en") if value else ""


def inclusive_period(start: date | None, end: date | None) -> str:
    """A half-open [start, end) period as people read it: "Mar 5, 2026 – Apr 4, 2026"."""
    if not start or not end:
        return ""
    last = end - timedelta(days=1) if end > start else start
    if last == start:
        return format_day(start)
    return f"{format_day(start)} \u2013 {format_day(last)}"


def tier_wording(tiers: list[dict], *, model: str | None, fmt: Formatter) -> str:
    """The breakdown of a usage line in words, from its tiers JSON
    ({from, to, units, unit_amount, flat_amount, amount}):
    "first 25 at $20.00, next 35 at $15.00". A single plain tier (standard pricing) says nothing the
    quantity and unit price columns do not already say, so it yields ""."""
    rows = [t for t in tiers or [] if _dec(t.get("units", 0)) != 0]
    if not rows:
        return ""
    first = rows[0]
    if (len(rows) == 1 and _dec(first.get("from", 0)) == 0 and first.get("to") is None
            and _dec(first.get("flat_amount", 0)) == 0 and model != "volume"):
        return ""
    if model == "volume" and len(rows) == 1:
        low, high = _dec(first.get("from", 0)), first.get("to")
        # `from` is exclusive and `to` inclusive: the tier {from 25, to 100} holds units 26–100.
        if high is None:
            band = f"over {fmt.quantity(low)}"
        elif low == 0:
            band = f"up to {fmt.quantity(_dec(high))}"
        elif low == low.to_integral_value():
            band = f"{fmt.quantity(low + 1)}\u2013{fmt.quantity(_dec(high))}"
        else:
            band = f"over {fmt.quantity(low)} up to {fmt.quantity(_dec(high))}"
        text = f"all {fmt.quantity(first['units'])} at {fmt.price(first['unit_amount'])} (volume tier {band})"
        if _dec(first.get("flat_amount", 0)):
            text += f" + {fmt.price(first['flat_amount'])} flat"
        return text
    parts = []
    for index, tier in enumerate(rows):
        prefix = "first" if index == 0 and _dec(tier.get("from", 0)) == 0 else "next"
        units = fmt.quantity(tier["units"])
        unit_amount = _dec(tier.get("unit_amount", 0))
        flat = _dec(tier.get("flat_amount", 0))
        if unit_amount == 0 and flat == 0:
            parts.append(f"{prefix} {units} free")
        elif unit_amount == 0:
            parts.append(f"{prefix} {units} for {fmt.price(flat)}")
        else:
            text = f"{prefix} {units} at {fmt.price(unit_amount)}"
            if flat:
                text += f" + {fmt.price(flat)} flat"
            parts.append(text)
    return ", ".join(parts)


# --- invoice document --------------------------------------------------------------------------

@dataclass
class DocumentRow:
    label: str
    amount: str
    detail: str = ""
    strong: bool = False


@dataclass
class LineGroup:
    heading: str
    lines: list[dict] = field(default_factory=list)


def _snapshot_of(invoice: Invoice) -> dict:
    if invoice.status == InvoiceStatus.DRAFT:
        # Preview only: a draft has no snapshot yet, so it shows what finalizing would freeze.

        return customer_snapshot(invoice.customer)
    return dict(invoice.customer_snapshot or {})


def _seller_of(snapshot: dict) -> dict:
    return dict(snapshot.get("seller") or settings.SELLER)


def invoice_totals_rows(invoice: Invoice, *, fmt: Formatter) -> list[DocumentRow]:
    """The totals block under an invoice's lines (subtotal, discounts, taxes, total, credits, paid),
    shared by the PDF and the back-office invoice page."""
    totals = [DocumentRow("Subtotal", fmt.money(invoice.subtotal))]
    discount_lines = list(invoice.discount_lines or [])
    for discount in discount_lines:
        label = " \u2013 ".join(p for p in (discount.get("code"), discount.get("description")) if p) or "Discount"
        totals.append(DocumentRow(f"Discount: {label}", fmt.minus(discount.get("amount", 0))))
    if not discount_lines and _dec(invoice.discount):
        totals.append(DocumentRow("Discount", fmt.minus(invoice.discount)))
    tax_lines = list(invoice.tax_lines or [])
    for tax in tax_lines:
        rate = tax.get("rate")
        detail = ""
        if rate is not None:
            detail = f"{fmt.percent(rate)} of {fmt.money(tax.get('taxable_amount', 0))}"
        totals.append(DocumentRow(tax.get("name") or "Tax", fmt.money(tax.get("amount", 0)), detail=detail))
    if not tax_lines and _dec(invoice.tax):
        totals.append(DocumentRow("Tax", fmt.money(invoice.tax)))
    totals.append(DocumentRow("Total", fmt.money(invoice.total), strong=True))
    if _dec(invoice.credit_balance_applied):
        totals.append(DocumentRow("Credit balance applied", fmt.minus(invoice.credit_balance_applied)))
    if _dec(invoice.prepaid_applied):
        totals.append(DocumentRow("Prepaid credits applied", fmt.minus(invoice.prepaid_applied)))
    totals.append(DocumentRow("Amount paid", fmt.minus(invoice.amount_paid) if _dec(invoice.amount_paid)
                              else fmt.money(ZERO)))
    return totals


def invoice_document_context(invoice: Invoice, *, lines=None) -> dict:
    """Everything the invoice template prints, as display strings. `lines` may be passed for an
    unsaved in-memory invoice (the benchmark); otherwise the stored lines are read."""
    snapshot = _snapshot_of(invoice)
    currency = invoice.currency
    fmt = Formatter(currency=currency, locale=document_locale(snapshot.get("country")))
    stored = lines is None
    if stored:
        lines = list(invoice.lines.order_by("position", "pk"))

    groups: dict[str, LineGroup] = {}
    for line in lines:
        group = groups.setdefault(line.kind, LineGroup(heading=KIND_HEADINGS.get(line.kind, line.kind.title())))
        is_usage = line.kind in (LineKind.USAGE, LineKind.LATE_USAGE)
        group.lines.append({
            "description": line.description,
            # A line's own period is printed only where it differs from the invoice's (a fee billed in
            # advance for the next period, a proration, late usage).
            "period": ("" if (line.period_start, line.period_end) == (invoice.period_start, invoice.period_end)
                       else inclusive_period(line.period_start, line.period_end)),
            "quantity": fmt.quantity(line.quantity) if line.quantity is not None else "",
            "unit_amount": fmt.price(line.unit_amount) if line.unit_amount is not None else "",
            "amount": fmt.money(line.amount),
            "tiers": tier_wording(line.tiers, model=(line.metadata or {}).get("model"), fmt=fmt) if is_usage else "",
        })
    ordered_groups = [groups[k] for k in KIND_HEADINGS if k in groups] + [
        g for k, g in groups.items() if k not in KIND_HEADINGS]

    totals = invoice_totals_rows(invoice, fmt=fmt)

    amount_due = fmt.money(invoice.amount_due)
    watermark = {InvoiceStatus.DRAFT: "DRAFT", InvoiceStatus.VOID: "VOID"}.get(invoice.status, "")
    return {
        "title": "Invoice",
        "watermark": watermark,
        "is_draft": invoice.status == InvoiceStatus.DRAFT,
        "number": invoice.number if invoice.status != InvoiceStatus.DRAFT else "",
        "status": invoice.get_status_display(),
        "seller": _seller_of(snapshot),
        "customer": snapshot,
        "currency": currency,
        "issue_date": format_day(invoice.issue_date),
        "due_date": format_day(invoice.due_date),
        "period": inclusive_period(invoice.period_start, invoice.period_end),
        "groups": ordered_groups,
        "totals": totals,
        "tax_note": invoice.tax_note,
        "amount_due": amount_due,
        "payment_method": ("Card or account on file (automatic charge)"
                           if snapshot.get("collection_method") == PAYMENT_TERMS_CARD else "Bank transfer"),
        "payment": _payment_instructions(invoice, snapshot=snapshot, amount_due=amount_due),
        "explanation": (_explanation(invoice, fmt=fmt) if stored and getattr(settings, "INVOICE_PDF_EXPLANATION", False)
                        else None),
    }


def _explanation(invoice: Invoice, *, fmt: Formatter) -> dict | None:
    """The explanation's comparison with the previous invoice (settings.INVOICE_PDF_EXPLANATION): the
    change of total and the drivers that make it up, exactly as GET /invoices/{id}/explanation/."""
    comparison = invoice_explanation(invoice=invoice)["comparison"]
    if comparison["previous_invoice"] is None or not comparison["drivers"]:
        return None
    return {"previous_total": fmt.money(Decimal(comparison["previous_total"])),
            "delta": fmt.money(Decimal(comparison["total_delta"])),
            "drivers": [{"text": d["text"], "amount": fmt.money(Decimal(d["amount"]))} for d in comparison["drivers"]]}


def _payment_instructions(invoice: Invoice, *, snapshot: dict, amount_due: str) -> list[str]:
    if invoice.status == InvoiceStatus.VOID:
        return ["This invoice has been voided. Nothing is due."]
    if invoice.amount_due <= 0:
        return ["Nothing is due on this invoice. Thank you."]
    seller = _seller_of(snapshot)
    reference = invoice.number or "the invoice number"
    due = format_day(invoice.due_date) or "the due date"
    if snapshot.get("collection_method") == PAYMENT_TERMS_CARD:
        return [f"{amount_due} will be charged to your payment method on file. No action is needed."]
    text = [f"Please pay {amount_due} by bank transfer by {due}, quoting {reference} as the payment reference."]
    bank = seller.get("bank_details") or seller.get("bank")
    if bank:
        text.append(f"Bank details: {bank}")
    payee = seller.get("name") or ""
    text.append(f"Payee: {payee}" + ("" if payee.endswith(".") else ".")
                + (f" Questions: {seller['email']}" if seller.get("email") else ""))
    return text


# --- rendering ---------------------------------------------------------------------------------

DOCUMENT_FILES = (Path(settings.BASE_DIR) / "static").resolve()


def document_url_fetcher(url: str, *args, **kwargs):
    """The only resources a document may load: the app's own static files (stylesheet, fonts) and
    inline `data:` URLs. No other `file://` path, no network: a URL that slipped into a document
    cannot read the server's files or reach another host (WeasyPrint skips the refused resource)."""
    from weasyprint import default_url_fetcher  # noqa: PLC0415 — heavy dependency, loaded on first use

    parsed = urlsplit(url)
    if parsed.scheme == "data":
        return default_url_fetcher(url, *args, **kwargs)
    if parsed.scheme == "file" and not parsed.netloc:
        path = Path(unquote(parsed.path)).resolve()
        if path.is_relative_to(DOCUMENT_FILES) and path.is_file():
            return default_url_fetcher(path.as_uri(), *args, **kwargs)
    raise ValueError(f"documents only load the app's static files; refused {url[:200]!r}")


@lru_cache(maxsize=1)
def _weasy():
    """WeasyPrint objects that are costly to build: the stylesheet and the font configuration."""
    from weasyprint import CSS  # noqa: PLC0415 — heavy dependency, loaded on first use
    from weasyprint.text.fonts import FontConfiguration  # noqa: PLC0415 — heavy dependency, loaded on first use

    font_config = FontConfiguration()
    return CSS(filename=str(STYLESHEET), font_config=font_config, url_fetcher=document_url_fetcher), font_config


# Drop them before interpreter teardown: FontConfiguration.__del__ needs modules that are gone by then.
atexit.register(_weasy.cache_clear)


# The web server runs Django in threads (2 per worker process) and a draft's preview renders on request.
# Neither WeasyPrint's shared font configuration (Pango/fontconfig state) nor ReportLab's font registry and
# per-document font subsets are documented as thread-safe, so a process renders one document at a time
# (Celery workers render one at a time anyway; a preview waits at most one other document's ~10-150 ms).
_RENDER_LOCK = threading.Lock()


def html_to_pdf(html: str) -> bytes:
    from weasyprint import HTML  # noqa: PLC0415 — heavy dependency, loaded on first use

    # The templates' indentation between tags would become anonymous boxes WeasyPrint styles and
    # lays out for nothing (a few per cent of a 20-line invoice); text inside elements is untouched.
    html = strip_spaces_between_tags(html)
    with _RENDER_LOCK:
        stylesheet, font_config = _weasy()
        return HTML(string=html, base_url=str(DOCUMENT_FILES), url_fetcher=document_url_fetcher).write_pdf(
            stylesheets=[stylesheet], font_config=font_config)


INVOICE_TEMPLATE = "invoicing/invoice_pdf.html"


def render_invoice_html(invoice: Invoice, *, lines=None) -> str:
    return render_to_string(INVOICE_TEMPLATE, invoice_document_context(invoice, lines=lines))


def invoice_pdf_from_template(context: dict) -> bytes:
    """WeasyPrint's rendering of the invoice template for a document context."""
    return html_to_pdf(render_to_string(INVOICE_TEMPLATE, context))


def render_invoice_pdf(invoice: Invoice, *, lines=None) -> bytes:
    """The invoice as PDF bytes. Drafts render as a watermarked preview without a number.
    Drawn on the canvas (settings.INVOICE_PDF_ENGINE) unless some text needs a font the bundled one
    lacks; WeasyPrint lays out the same context from the HTML template otherwise."""
    context = invoice_document_context(invoice, lines=lines)
    if settings.INVOICE_PDF_ENGINE == "canvas":
        try:
            with _RENDER_LOCK:
                return render_invoice_canvas(context)
        except NotDrawable:
            pass  # e.g. a Japanese legal name: WeasyPrint's font fallback prints it
    return invoice_pdf_from_template(context)


def invoice_pdf_filename(invoice: Invoice) -> str:
    return f"{invoice.number}.pdf" if invoice.number else f"draft-{str(invoice.pk)[:8]}.pdf"


def invoice_pdf_store(*, invoice: Invoice) -> Invoice:
    """Render a finalized invoice once and store it on `invoice.pdf` (idempotent: an invoice that
    already has its document keeps it; the document of an immutable invoice never changes).
    Rendering happens outside the row lock; the lock only decides who stores."""
    invoice = Invoice.objects.get(pk=invoice.pk)
    if invoice.status == InvoiceStatus.DRAFT:
        raise ConflictError("A draft has no document yet; preview it instead.", code="invalid_state")
    if invoice.pdf:
        return invoice
    content = render_invoice_pdf(invoice)
    with transaction.atomic():
        invoice = row_lock(Invoice, invoice.pk)
        if invoice.pdf:
            return invoice
        invoice.pdf.save(invoice_pdf_filename(invoice), ContentFile(content), save=False)
        invoice.pdf_rendered_at = timezone.now()
        invoice.save(update_fields=["pdf", "pdf_rendered_at", "updated_at"])
    return invoice


def invoice_pdf_bytes(*, invoice: Invoice) -> bytes:
    """The document to hand out: the stored PDF of an issued invoice (stored now if missing), a
    fresh preview for a draft, a fresh "VOID" rendering for a voided invoice."""
    if invoice.status in (InvoiceStatus.DRAFT, InvoiceStatus.VOID):
        return render_invoice_pdf(invoice)
    invoice = invoice_pdf_store(invoice=invoice)
    try:
        with invoice.pdf.open("rb") as handle:
            return handle.read()
    except FileNotFoundError:
        # The stored file went missing (e.g. a wiped media volume): the snapshot renders the same document.
        return render_invoice_pdf(invoice)


# --- credit notes ------------------------------------------------------------------------------

OUTCOME_WORDING = {
    CreditNoteOutcome.CREDIT_BALANCE: "The credited amount is added to your account balance and applied to your "
                                      "next invoices.",
    CreditNoteOutcome.REFUND: "The credited amount is refunded to your original payment method.",
    CreditNoteOutcome.REDUCE_AMOUNT_DUE: "The credited amount reduces the amount due on invoice {invoice}.",
}


def credit_note_document_context(credit_note: CreditNote) -> dict:
    invoice = credit_note.invoice
    snapshot = dict(credit_note.customer_snapshot or invoice.customer_snapshot or {})
    fmt = Formatter(currency=credit_note.currency, locale=document_locale(snapshot.get("country")))
    lines = [{"description": line.description, "amount": fmt.money(line.amount)}
             for line in credit_note.lines.order_by("pk")]
    totals = [DocumentRow("Subtotal", fmt.money(credit_note.subtotal))]
    tax_lines = list(credit_note.tax_lines or [])
    for tax in tax_lines:
        rate = tax.get("rate")
        detail = f"{fmt.percent(rate)} of {fmt.money(tax.get('taxable_amount', 0))}" if rate is not None else ""
        totals.append(DocumentRow(tax.get("name") or "Tax", fmt.money(tax.get("amount", 0)), detail=detail))
    if not tax_lines and _dec(credit_note.tax):
        totals.append(DocumentRow("Tax", fmt.money(credit_note.tax)))
    totals.append(DocumentRow("Total credited", fmt.money(credit_note.total), strong=True))
    outcome = OUTCOME_WORDING.get(credit_note.outcome, "").format(invoice=invoice.number or "")
    return {
        "title": "Credit note",
        "watermark": "VOID" if credit_note.status == CreditNoteStatus.VOID else "",
        "number": credit_note.number,
        "invoice_number": invoice.number,
        "invoice_issue_date": format_day(invoice.issue_date),
        "seller": _seller_of(snapshot),
        "customer": snapshot,
        "currency": credit_note.currency,
        "issue_date": format_day(credit_note.issue_date),
        "reason": credit_note.reason,
        "lines": lines,
        "totals": totals,
        "total": fmt.money(credit_note.total),
        "outcome": outcome,
    }


def render_credit_note_pdf(credit_note: CreditNote) -> bytes:
    html = render_to_string("invoicing/credit_note_pdf.html", credit_note_document_context(credit_note))
    return html_to_pdf(html)


def credit_note_pdf_filename(credit_note: CreditNote) -> str:
    return f"{credit_note.number}.pdf"


def credit_note_pdf_store(*, credit_note: CreditNote) -> CreditNote:
    """Render a credit note once and store it on `credit_note.pdf` (idempotent)."""
    credit_note = CreditNote.objects.select_related("invoice").get(pk=credit_note.pk)
    if credit_note.pdf:
        return credit_note
    content = render_credit_note_pdf(credit_note)
    with transaction.atomic():
        credit_note = row_lock(CreditNote, credit_note.pk, related=("invoice",))
        if credit_note.pdf:
            return credit_note
        credit_note.pdf.save(credit_note_pdf_filename(credit_note), ContentFile(content), save=False)
        credit_note.pdf_rendered_at = timezone.now()
        credit_note.save(update_fields=["pdf", "pdf_rendered_at", "updated_at"])
    return credit_note


def credit_note_pdf_bytes(*, credit_note: CreditNote) -> bytes:
    credit_note = credit_note_pdf_store(credit_note=credit_note)
    try:
        with credit_note.pdf.open("rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return render_credit_note_pdf(credit_note)
