"""The canvas renderer (invoicing/pdf_canvas.py) draws the same invoice as the WeasyPrint template:
the same words on the same pages, rows that never split, the heading on every page, and WeasyPrint
for any text the bundled font cannot print. Invoices here are unsaved, in-memory models: the
renderers read nothing else."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st
from pypdf import PdfReader

from invoicing.models import Invoice, InvoiceLine
from invoicing.pdf import invoice_document_context, invoice_pdf_from_template, render_invoice_pdf
from invoicing.pdf_canvas import (
    BODY,
    CONTENT_BOTTOM,
    TOP,
    NotDrawable,
    Style,
    _width,
    layout_invoice,
    render_invoice_canvas,
    wrap,
)

START, END = date(2026, 3, 5), date(2026, 4, 5)
TIERS = [{"from": "0", "to": "1000", "units": "1000", "unit_amount": "0", "flat_amount": "0", "amount": "0"},
         {"from": "1000", "to": None, "units": "4000", "unit_amount": "0.002", "flat_amount": "0", "amount": "8"}]


def invoice(n_usage: int = 3, *, status: str = "finalized", name: str = "Acme Rockets Inc.",
            description: str = "API calls, region {i}", tax_note: str = "") -> tuple[Invoice, list[InvoiceLine]]:
    lines = [InvoiceLine(position=0, kind="subscription", description="Team plan (monthly)", quantity=Decimal(1),
                         unit_amount=Decimal("100"), amount=Decimal("100.00"), period_start=START, period_end=END),
             InvoiceLine(position=1, kind="proration", description="Seat change on Mar 20 (prorated 16/31 days)",
                         quantity=Decimal(3), unit_amount=Decimal("15"), amount=Decimal("23.23"),
                         period_start=date(2026, 3, 20), period_end=END)]
    lines += [InvoiceLine(position=2 + i, kind="usage", description=description.format(i=i + 1),
                          quantity=Decimal(5000), amount=Decimal("8.00"), period_start=START, period_end=END,
                          tiers=TIERS, metadata={"model": "graduated"}) for i in range(n_usage)]
    subtotal = Decimal("123.23") + 8 * n_usage
    tax = (subtotal * Decimal("0.0625")).quantize(Decimal("0.01"))
    doc = Invoice(
        number="INV-2026-000042", status=status, currency="USD", billing_date=END, issue_date=END,
        due_date=date(2026, 5, 5), period_start=START, period_end=END, subtotal=subtotal, discount=Decimal(0),
        tax=tax, total=subtotal + tax, credit_balance_applied=Decimal("20.00"), amount_due=subtotal + tax - 20,
        tax_lines=[{"tax_rate_id": 1, "name": "Texas state sales tax", "rate": "6.25",
                    "taxable_amount": str(subtotal), "amount": str(tax)}],
        tax_note=tax_note,
        customer_snapshot={"external_id": "acme", "name": name, "address": "1 Main St\nSpringfield",
                           "country": "US", "region": "TX", "email": "ap@acme.example",
                           "collection_method": "send_invoice", "net_terms_days": 30,
                           "seller": {"name": "Ledgerline Demo Inc.", "address": "1 Market Street, San Francisco",
                                      "email": "billing@ledgerline.local", "tax_id": "US-12-3456789"}})
    return doc, lines


def page_texts(content: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(content)).pages]


def producer(content: bytes) -> str:
    return PdfReader(io.BytesIO(content)).metadata.producer or ""


@pytest.mark.parametrize("n_usage,status,tax_note", [
    (3, "finalized", ""),
    (16, "finalized", "Reverse charge: VAT to be accounted for by the recipient (Art. 196 VAT Directive)."),
    (45, "void", ""),
])
def test_canvas_prints_what_weasyprint_prints_page_by_page(n_usage, status, tax_note):
    doc, lines = invoice(n_usage, status=status, tax_note=tax_note,
                         description="API calls in the eu-west-1 region, production cluster number {i}, "
                                     "billed per thousand requests")
    context = invoice_document_context(doc, lines=lines)
    canvas = page_texts(render_invoice_canvas(context))
    weasy = page_texts(invoice_pdf_from_template(context))
    assert len(canvas) == len(weasy)
    # Whitespace aside (WeasyPrint runs "Service period" into its value), each page holds the same text.
    assert ["".join(t.split()) for t in canvas] == ["".join(t.split()) for t in weasy]
    assert f"Page {len(canvas)} of {len(canvas)}" in canvas[-1]
    if status == "void":
        assert "VOID" in canvas[0] and "This invoice has been voided. Nothing is due." in canvas[-1]


def test_labels_and_values_read_on_one_line():
    doc, lines = invoice()
    text = page_texts(render_invoice_canvas(invoice_document_context(doc, lines=lines)))[0]
    for expected in ("Invoice number INV-2026-000042", "Due date May 5, 2026", "Service period Mar 5, 2026 \u2013 Apr 4, 2026",
                     "Team plan (monthly) 1 $100.00 $100.00", "Mar 20, 2026 \u2013 Apr 4, 2026\n3 $15.00 $23.23",
                     "Texas state sales tax (6.25% of $147.23) $9.20", "Credit balance applied -$20.00",
                     "Amount due $136.43", "Tax ID: US-12-3456789"):
        assert expected in text
    # 100 + 23.23 + 3 × 8.00 = 147.23; 6.25 % tax = 9.20 (9.201875); 147.23 + 9.20 − 20.00 credit = 136.43


@pytest.mark.parametrize("n_usage", [0, 1, 17, 40, 120])
def test_rows_never_split_and_every_page_repeats_the_heading(n_usage):
    doc, lines = invoice(n_usage)
    pages = layout_invoice(invoice_document_context(doc, lines=lines))
    for number, ops in enumerate(pages, start=1):
        texts = [op for op in ops if op[0] == "text"]
        for _, _, baseline, text, style, _ in texts:
            assert TOP < baseline < CONTENT_BOTTOM, (number, text)
        if number > 1 and any(t[3].startswith("API calls") for t in texts):
            assert texts[0][3] == "DESCRIPTION"  # the table heading comes first on a continued page
        # Every usage line's description, tier wording and amount are on the same page.
        descriptions = [t for t in texts if t[3].startswith("API calls, region")]
        assert len([t for t in texts if t[3].startswith("first 1,000 free")]) == len(descriptions)
        assert len([t for t in texts if t[3] == "$8.00"]) == len(descriptions)
    printed = [op[3] for ops in pages for op in ops if op[0] == "text" and op[3].startswith("API calls, region")]
    assert printed == [f"API calls, region {i + 1}" for i in range(n_usage)]
    totals = [i for i, ops in enumerate(pages) for op in ops if op[0] == "text" and op[3] in ("Subtotal", "Amount due")]
    assert len(totals) == 2 and totals[0] == totals[1]  # the totals block stays on one page


def test_text_outside_the_bundled_font_is_rendered_by_weasyprint(settings):
    settings.INVOICE_PDF_ENGINE = "canvas"
    doc, lines = invoice(name="株式会社ヤマダ電機")
    with pytest.raises(NotDrawable):
        layout_invoice(invoice_document_context(doc, lines=lines))
    content = render_invoice_pdf(doc, lines=lines)
    assert "WeasyPrint" in producer(content)
    assert "株式会社ヤマダ電機" in "".join(page_texts(content))

    latin, lines = invoice(name="Société Générale Ölçüm Łódź")  # Latin-1/Extended: the bundled font has them
    content = render_invoice_pdf(latin, lines=lines)
    assert "ReportLab" in producer(content)
    assert "Société Générale Ölçüm Łódź" in "".join(page_texts(content))


def test_the_engine_setting_chooses_the_renderer(settings):
    doc, lines = invoice()
    settings.INVOICE_PDF_ENGINE = "weasyprint"
    assert "WeasyPrint" in producer(render_invoice_pdf(doc, lines=lines))
    settings.INVOICE_PDF_ENGINE = "canvas"
    assert "ReportLab" in producer(render_invoice_pdf(doc, lines=lines))


def test_a_word_wider_than_the_column_is_cut_at_the_edge():
    word = "Supercalifragilisticexpialidocious" * 3
    lines = wrap(f"Suite 12 {word} end", BODY, 120)
    assert lines[0] == "Suite 12"
    assert "".join(lines[1:-1]) + lines[-1].removesuffix(" end") == word
    assert all(_width(line, BODY) <= 120 for line in lines)


words = st.text(alphabet="abcdefghijklmnopqrstuvwxyzÀÉü0123456789$,.-", min_size=1, max_size=8)


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.lists(words, min_size=1, max_size=40), st.floats(min_value=80, max_value=400),
       st.sampled_from([BODY, Style(size=7.4, bold=True, spacing=0.5, upper=True)]))
def test_wrapping_keeps_every_word_in_order_and_within_the_width(text_words, width, style):
    lines = wrap("  ".join(text_words), style, width)
    assert all(_width(line, style) <= width + 1e-9 for line in lines)
    expected = [w.upper() if style.upper else w for w in text_words]
    assert " ".join(lines).split(" ") == expected  # no word broken, since none is wider than 80 pt


def test_the_explanation_section_matches_the_template():
    """INVOICE_PDF_EXPLANATION's section ("what changed since the previous invoice"), set on the
    context directly: the explanation itself reads stored invoices (tests/intel)."""
    doc, lines = invoice(12)
    context = invoice_document_context(doc, lines=lines)
    context["explanation"] = {"previous_total": "$100.00", "delta": "$56.43", "drivers": [
        {"text": f"API calls, region {i}: 5,000 units against 4,000 units on the previous invoice", "amount": "$2.00"}
        for i in range(1, 13)]}
    canvas = page_texts(render_invoice_canvas(context))
    weasy = page_texts(invoice_pdf_from_template(context))
    assert ["".join(t.split()) for t in canvas] == ["".join(t.split()) for t in weasy]
    assert "What changed since the previous invoice ($100.00): $56.43" in "".join(canvas)


def test_a_sparse_invoice_draws_what_there_is():
    """No seller details, a bare customer, a line without a description, no due date: nothing to
    print is simply absent, as in the template, and the row keeps its numbers."""
    doc, lines = invoice(1)
    lines[0].description = ""
    doc.due_date = None
    doc.customer_snapshot = {"name": "Bare Co", "seller": {"name": ""}}
    context = invoice_document_context(doc, lines=lines)
    canvas = page_texts(render_invoice_canvas(context))
    weasy = page_texts(invoice_pdf_from_template(context))
    assert ["".join(t.split()) for t in canvas] == ["".join(t.split()) for t in weasy]
    assert "Due date on finalization" in canvas[0] and "1 $100.00 $100.00" in canvas[0]


def test_documents_rendered_from_concurrent_threads_are_the_ones_rendered_alone():
    """The web server runs Django in threads and a draft's preview renders on request: documents drawn at
    the same time, by both engines, must each read exactly as when drawn alone."""
    from concurrent.futures import ThreadPoolExecutor

    jobs = [invoice(3 + i) for i in range(4)] + [invoice(2 + i, name=f"株式会社テスト {i}") for i in range(2)]
    alone = [page_texts(render_invoice_pdf(doc, lines=lines)) for doc, lines in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda job: page_texts(render_invoice_pdf(job[0], lines=job[1])), jobs * 3))
    assert together == alone * 3
    assert "株式会社テスト 1" in alone[-1][0] and "Acme Rockets Inc." in alone[0][0]
