"""Invoice documents checked the way a person would: render the PDF, turn a page into a PNG with
pdftoppm, and read the text back with pypdf. Amounts are hand-computed."""

from __future__ import annotations

import io
import subprocess
from datetime import date
from decimal import Decimal

import pytest
from pypdf import PdfReader

from customers.models import Customer
from invoicing.models import CreditNote, CreditNoteLine, Invoice, InvoiceStatus
from invoicing.pdf import (
    Formatter,
    credit_note_pdf_store,
    document_locale,
    inclusive_period,
    invoice_pdf_store,
    render_credit_note_pdf,
    render_invoice_pdf,
    tier_wording,
)

pytestmark = pytest.mark.django_db

SEATS_TIERS = {"tiers": [{"up_to": 25, "unit_amount": "20", "flat_amount": "0"},
                         {"up_to": None, "unit_amount": "15", "flat_amount": "0"}]}


def pdf_text(content: bytes) -> str:
    assert content.startswith(b"%PDF-")
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def pdf_to_png(content: bytes, directory) -> bytes:
    """The first page as a PNG, as a person would look at it (pdftoppm -png -r 50)."""
    source = directory / "document.pdf"
    source.write_bytes(content)
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(source), str(directory / "page")],
                   check=True, capture_output=True, timeout=60)
    (png,) = directory.glob("page*.png")
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 2000
    return data


def _finalized_invoice(world, *, customer: str, currency: str = "USD", country: str = "US", amount: str = "100.00",
                       seats: int | None = 30, **customer_extra) -> Invoice:
    """A monthly anniversary subscription from Mar 5, 2026 billed in arrears: one invoice on Apr 5
    for the period Mar 5 – Apr 4 with the fee and (optionally) graduated seats."""
    charges = []
    if seats is not None:
        world.metric(f"seats_{customer}", "max", "seats")
        charges = [{"billable_metric": f"seats_{customer}", "model": "graduated", "properties": SEATS_TIERS}]
    world.plan(f"plan_{customer}", currency=currency, amount=amount, pay_in_advance=False, charges=charges,
               name="Team plan")
    world.customer(customer, currency=currency, country=country, **customer_extra)
    world.subscription(f"sub_{customer}", customer=customer, plan=f"plan_{customer}", start_date=date(2026, 3, 5),
                       billing_time="anniversary")
    if seats is not None:
        world.events(f"seats_{customer}", [("2026-03-10T12:00:00Z", {"seats": seats})], customer=customer)
    world.run(date(2026, 4, 5))
    invoice = Invoice.objects.get(customer__external_id=customer)
    assert invoice.status in (InvoiceStatus.FINALIZED, InvoiceStatus.PAID) and invoice.number
    return invoice


def _with_breakdown(invoice: Invoice, **fields) -> Invoice:
    """Freeze a discount/tax/credit breakdown onto the invoice (what finalize computes from coupons,
    tax rates and credits), so the document test does not depend on the catalog set-up."""
    Invoice.objects.filter(pk=invoice.pk).update(**fields)
    return Invoice.objects.get(pk=invoice.pk)


@pytest.fixture
def usd_invoice(world):
    invoice = _finalized_invoice(world, customer="acme", name="Acme Rockets Inc.", address="1 Main St\nSpringfield",
                                 email="ap@acme.example", collection_method="send_invoice", net_terms_days=30)
    assert [(ln.kind, ln.amount) for ln in invoice.lines.order_by("position")] == [
        ("subscription", Decimal("100.0000")), ("usage", Decimal("575.0000"))]  # 25 × 20.00 + 5 × 15.00
    # Subtotal 675.00 − WELCOME 75.00 = 600.00 taxable; 20% tax = 120.00; total 720.00;
    # 20.00 of credit balance and 50.00 prepaid credit leave 650.00 due.
    return _with_breakdown(
        invoice, subtotal=Decimal("675.00"), discount=Decimal("75.00"), tax=Decimal("120.00"), total=Decimal("720.00"),
        discount_lines=[{"coupon_id": 1, "code": "WELCOME", "description": "Welcome offer", "amount": "75.00"}],
        tax_lines=[{"tax_rate_id": 1, "name": "State sales tax", "rate": "20", "taxable_amount": "600.00",
                    "amount": "120.00"}],
        credit_balance_applied=Decimal("20.00"), prepaid_applied=Decimal("50.00"), amount_due=Decimal("650.00"))


def test_invoice_pdf_shows_the_frozen_invoice(usd_invoice, tmp_path):
    content = render_invoice_pdf(usd_invoice)
    pdf_to_png(content, tmp_path)
    text = pdf_text(content)

    assert usd_invoice.number in text
    assert "Mar 5, 2026 \u2013 Apr 4, 2026" in text  # [Mar 5, Apr 5) shown inclusive
    assert "Issue date Apr 5, 2026" in text and "Due date May 5, 2026" in text
    assert "Ledgerline Demo Inc." in text  # seller block (settings.SELLER, frozen in the snapshot)
    assert "Acme Rockets Inc." in text and "Springfield" in text and "ap@acme.example" in text
    assert "first 25 at $20.00, next 5 at $15.00" in text
    assert "Subscription" in text and "Usage" in text  # grouped by kind
    assert "$575.00" in text and "Subtotal $675.00" in text
    assert "Discount: WELCOME \u2013 Welcome offer -$75.00" in text
    assert "State sales tax (20% of $600.00) $120.00" in text
    assert "Total $720.00" in text
    assert "Credit balance applied -$20.00" in text and "Prepaid credits applied -$50.00" in text
    assert "Amount paid $0.00" in text
    assert "Amount due $650.00" in text
    assert "Please pay $650.00 by bank transfer by May 5, 2026" in text
    assert "DRAFT" not in text


def test_pdf_keeps_the_snapshot_after_the_customer_changes(usd_invoice, billing_api):
    customer = Customer.objects.get(external_id="acme")
    customer.name, customer.address, customer.country = "Renamed Corp", "99 Elsewhere Rd", "DE"
    customer.save()

    text = pdf_text(render_invoice_pdf(Invoice.objects.get(pk=usd_invoice.pk)))
    assert "Acme Rockets Inc." in text and "1 Main St" in text
    assert "Renamed Corp" not in text and "Elsewhere" not in text
    assert "$650.00" in text  # the locale still follows the frozen country

    response = billing_api.get(f"/api/v1/invoices/{usd_invoice.pk}/pdf/")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="{usd_invoice.number}.pdf"'
    served = pdf_text(response.content)
    assert "Acme Rockets Inc." in served and "Renamed Corp" not in served


def test_store_is_idempotent_and_the_api_serves_the_stored_document(usd_invoice, reader_api):
    stored = invoice_pdf_store(invoice=usd_invoice)
    # invoices/YYYY/MM/<number>.pdf (the storage appends a suffix if a stale file of that name exists)
    assert stored.pdf.name.startswith("invoices/") and usd_invoice.number in stored.pdf.name
    assert stored.pdf_rendered_at is not None
    first_name, first_at = stored.pdf.name, stored.pdf_rendered_at
    with stored.pdf.open("rb") as handle:
        first_bytes = handle.read()

    again = invoice_pdf_store(invoice=usd_invoice)
    assert (again.pdf.name, again.pdf_rendered_at) == (first_name, first_at)

    response = reader_api.get(f"/api/v1/invoices/{usd_invoice.pk}/pdf/")  # billing:read is enough
    assert response.status_code == 200 and response.content == first_bytes


def test_api_renders_and_stores_on_demand(usd_invoice, reader_api):
    assert not usd_invoice.pdf
    response = reader_api.get(f"/api/v1/invoices/{usd_invoice.pk}/pdf/", HTTP_ACCEPT="application/pdf")
    assert response.status_code == 200 and response.content.startswith(b"%PDF-")
    assert usd_invoice.number in Invoice.objects.get(pk=usd_invoice.pk).pdf.name

    missing = reader_api.get("/api/v1/invoices/00000000-0000-0000-0000-000000000000/pdf/")
    assert missing.status_code == 404


def test_pdf_needs_a_key_with_billing_read(usd_invoice, usage_api, anon_api):
    assert usage_api.get(f"/api/v1/invoices/{usd_invoice.pk}/pdf/").status_code == 403
    assert anon_api.get(f"/api/v1/invoices/{usd_invoice.pk}/pdf/").status_code == 401


def test_eur_invoice_for_a_german_business_with_reverse_charge(world, tmp_path):
    invoice = _finalized_invoice(world, customer="kunde", currency="EUR", country="DE", amount="1234.56", seats=None,
                                 name="Beispiel GmbH", tax_id="DE123456789", email="rechnung@beispiel.example",
                                 collection_method="charge_automatically")
    invoice = _with_breakdown(
        invoice, tax_lines=[{"tax_rate_id": None, "name": "VAT reverse charge", "rate": "0",
                             "taxable_amount": "1234.56", "amount": "0.00"}],
        tax_note="Reverse charge: VAT to be accounted for by the recipient (Art. 196 VAT Directive).")
    content = render_invoice_pdf(invoice)
    pdf_to_png(content, tmp_path)
    text = pdf_text(content)
    assert "1.234,56\u00a0€" in text or "1.234,56 €" in text  # de_DE: grouping dot, decimal comma, sign after
    assert "Amount due 1.234,56" in text
    assert "VAT reverse charge (0\u00a0% of 1.234,56" in text or "VAT reverse charge (0 % of 1.234,56" in text
    assert "Reverse charge: VAT to be accounted for by the recipient" in text
    assert "DE123456789" in text  # the customer's VAT number
    assert "will be charged to your payment method on file" in text
    assert "bank transfer" not in text.lower()


def test_jpy_invoice_has_no_minor_units(world):
    invoice = _finalized_invoice(world, customer="nihon", currency="JPY", country="JP", amount="1500", seats=None,
                                 name="Nihon KK")
    assert invoice.total == Decimal("1500")
    text = pdf_text(render_invoice_pdf(invoice))
    assert "Amount due \u00a51,500" in text  # ja_JP; the full-width ￥ is printed as ¥ (the bundled font has it)
    assert "1,500.00" not in text and "\u00a51,500.00" not in text


def test_names_outside_the_bundled_font_are_printed_not_dropped(world):
    """A Japanese legal name and address: the bundled face has no CJK glyphs, so they come from the
    system's Noto CJK fallback (make system-deps installs it). Without it the name was silently
    missing from the document."""
    invoice = _finalized_invoice(world, customer="kabushiki", currency="JPY", country="JP", amount="1500", seats=None,
                                 name="株式会社ヤマダ電機", address="東京都千代田区丸の内1-1")
    text = pdf_text(render_invoice_pdf(invoice))
    assert "株式会社ヤマダ電機" in text and "東京都千代田区丸の内1-1" in text
    assert "Amount due \u00a51,500" in text


def test_draft_preview_is_watermarked_and_unnumbered(world, reader_api):
    world.plan("basic", amount="10.00", pay_in_advance=False, charges=[])
    world.customer("drafty", name="Drafty Ltd")
    world.subscription("s-drafty", customer="drafty", plan="basic", start_date=date(2026, 3, 1))
    world.run(date(2026, 4, 1), finalize=False)
    draft = Invoice.objects.get(customer__external_id="drafty")
    assert draft.status == InvoiceStatus.DRAFT and draft.number is None

    response = reader_api.get(f"/api/v1/invoices/{draft.pk}/pdf/")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="draft-{str(draft.pk)[:8]}.pdf"'
    text = pdf_text(response.content)
    assert "DRAFT" in text and "preview only" in text and "INV-" not in text
    assert "Drafty Ltd" in text and "$10.00" in text
    assert not Invoice.objects.get(pk=draft.pk).pdf  # previews are never stored


def test_credit_note_pdf(usd_invoice, tmp_path):
    credit_note = CreditNote.objects.create(
        number="CN-2026-000001", invoice=usd_invoice, customer=usd_invoice.customer, currency="USD",
        outcome="credit_balance", reason="Seats billed twice", issue_date=date(2026, 4, 10),
        subtotal=Decimal("100.00"), tax=Decimal("20.00"), total=Decimal("120.00"),
        tax_lines=[{"name": "State sales tax", "rate": "20", "taxable_amount": "100.00", "amount": "20.00"}],
        customer_snapshot=usd_invoice.customer_snapshot)
    CreditNoteLine.objects.create(credit_note=credit_note, description="Seats: 5 at $20.00", amount=Decimal("100.00"))
    content = render_credit_note_pdf(credit_note)
    pdf_to_png(content, tmp_path)
    text = pdf_text(content)
    assert "CN-2026-000001" in text and usd_invoice.number in text
    assert "Seats billed twice" in text and "Acme Rockets Inc." in text
    assert "State sales tax (20% of $100.00) $20.00" in text and "Total credited $120.00" in text
    assert "added to your account balance" in text

    stored = credit_note_pdf_store(credit_note=credit_note)
    assert stored.pdf.name.startswith("credit_notes/") and "CN-2026-000001" in stored.pdf.name
    assert stored.pdf_rendered_at
    assert credit_note_pdf_store(credit_note=credit_note).pdf.name == stored.pdf.name


# --- formatting units ----------------------------------------------------------------------------

def test_locale_and_money_formatting_use_decimals():
    assert document_locale("US") == "en_US" and document_locale("de") == "de_DE" and document_locale("") == "en_US"
    assert document_locale("JP") == "ja_JP"
    usd, eur = Formatter("USD", "en_US"), Formatter("EUR", "de_DE")
    assert usd.money(Decimal("720")) == "$720.00"
    assert usd.money(Decimal("0.005")) == "$0.01"  # half up, once
    assert usd.price(Decimal("0.000125000000")) == "$0.000125"  # unit prices keep their precision
    assert usd.price("20") == "$20.00"
    assert eur.money(Decimal("1234.56")) == "1.234,56\u00a0€"
    assert Formatter("JPY", "ja_JP").money(Decimal("1500")) == "\u00a51,500"
    assert Formatter("KWD", "en_US").money(Decimal("1.2345")) == "KWD1.235"
    with pytest.raises(TypeError):
        usd.money(1.5)


def test_inclusive_period_and_tier_wording():
    assert inclusive_period(date(2026, 3, 5), date(2026, 4, 5)) == "Mar 5, 2026 \u2013 Apr 4, 2026"
    assert inclusive_period(date(2026, 3, 5), date(2026, 3, 6)) == "Mar 5, 2026"
    usd = Formatter("USD", "en_US")
    graduated = [{"from": "0", "to": "25", "units": "25", "unit_amount": "20", "flat_amount": "0", "amount": "500"},
                 {"from": "25", "to": None, "units": "35", "unit_amount": "15", "flat_amount": "10", "amount": "535"}]
    assert tier_wording(graduated, model="graduated", fmt=usd) == "first 25 at $20.00, next 35 at $15.00 + $10.00 flat"
    volume = [{"from": "50", "to": None, "units": "60", "unit_amount": "35", "flat_amount": "0", "amount": "2100"}]
    assert tier_wording(volume, model="volume", fmt=usd) == "all 60 at $35.00 (volume tier over 50)"
    middle = [{"from": "25", "to": "100", "units": "60", "unit_amount": "6", "flat_amount": "0", "amount": "360"}]
    assert tier_wording(middle, model="volume", fmt=usd) == "all 60 at $6.00 (volume tier 26\u2013100)"
    first = [{"from": "0", "to": "25", "units": "12", "unit_amount": "8", "flat_amount": "0", "amount": "96"}]
    assert tier_wording(first, model="volume", fmt=usd) == "all 12 at $8.00 (volume tier up to 25)"
    package = [{"from": "0", "to": "100", "units": "100", "unit_amount": "0", "flat_amount": "0", "amount": "0"},
               {"from": "100", "to": None, "units": "2400", "unit_amount": "0", "flat_amount": "15", "amount": "15"}]
    assert tier_wording(package, model="package", fmt=usd) == "first 100 free, next 2,400 for $15.00"
    standard = [{"from": "0", "to": None, "units": "20", "unit_amount": "0.25", "flat_amount": "0", "amount": "5"}]
    assert tier_wording(standard, model="standard", fmt=usd) == ""  # the quantity and unit price columns say it
    late = [{"from": "60", "to": None, "units": "4", "unit_amount": "15", "flat_amount": "0", "amount": "60"}]
    assert tier_wording(late, model="graduated", fmt=usd) == "next 4 at $15.00"
