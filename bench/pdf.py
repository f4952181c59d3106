"""Invoice PDFs per second: a 20-line finalized invoice (fees, graduated usage with tier wording,
a discount, two tax rates, credits) rendered by `invoicing.pdf.render_invoice_pdf`, once per engine:
"canvas" (ReportLab, invoicing/pdf_canvas.py, the default) and "weasyprint" (the HTML template).

    .venv/bin/python bench/pdf.py [--seconds 20] [--warmup 3] [--engine canvas|weasyprint|both]

The invoice is an unsaved, in-memory model with its lines passed in, so the figure is the
rendering cost alone (template + layout + PDF + font subsetting) and no database is touched.
One process, one core; a Celery worker renders at about this rate per worker process.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import setup_django  # noqa: E402

TIERS = [{"from": "0", "to": "1000", "units": "1000", "unit_amount": "0", "flat_amount": "0", "amount": "0"},
         {"from": "1000", "to": "100000", "units": "99000", "unit_amount": "0.0015", "flat_amount": "0",
          "amount": "148.5"},
         {"from": "100000", "to": None, "units": "23456", "unit_amount": "0.001", "flat_amount": "0",
          "amount": "23.456"}]


def twenty_line_invoice():
    from invoicing.models import Invoice, InvoiceLine

    start, end = date(2026, 3, 5), date(2026, 4, 5)
    lines = [InvoiceLine(position=0, kind="subscription", description="Scale plan (monthly)", quantity=Decimal(1),
                         unit_amount=Decimal("499"), amount=Decimal("499.00"), period_start=start, period_end=end),
             InvoiceLine(position=1, kind="subscription", description="Extra seats", quantity=Decimal(12),
                         unit_amount=Decimal("15"), amount=Decimal("180.00"), period_start=start, period_end=end),
             InvoiceLine(position=2, kind="proration", description="Seat change on Mar 20 (prorated 16/31 days)",
                         quantity=Decimal(3), unit_amount=Decimal("15"), amount=Decimal("23.23"), period_start=start,
                         period_end=end)]
    for i in range(16):
        lines.append(InvoiceLine(position=3 + i, kind="usage", description=f"API calls, region {i + 1}",
                                 quantity=Decimal("123456"), amount=Decimal("171.96"), period_start=start,
                                 period_end=end, tiers=TIERS, metadata={"model": "graduated"}))
    lines.append(InvoiceLine(position=19, kind="minimum_commitment", description="Minimum commitment true-up",
                             quantity=Decimal(1), unit_amount=Decimal("0"), amount=Decimal("0.00")))
    subtotal = sum((line.amount for line in lines), Decimal(0))  # 702.23 + 16 × 171.96 = 3453.59
    discount = Decimal("345.36")  # 10 %
    taxable = subtotal - discount
    state, county = (taxable * Decimal("0.0625")).quantize(Decimal("0.01")), (taxable * Decimal("0.02")).quantize(
        Decimal("0.01"))
    total = taxable + state + county
    invoice = Invoice(
        number="INV-2026-000123", status="finalized", currency="USD", billing_date=end, issue_date=end,
        due_date=date(2026, 5, 5), period_start=start, period_end=end, subtotal=subtotal, discount=discount,
        tax=state + county, total=total, credit_balance_applied=Decimal("100.00"), prepaid_applied=Decimal("50.00"),
        amount_due=total - Decimal("150.00"),
        discount_lines=[{"coupon_id": 1, "code": "SCALE10", "description": "10% off", "amount": str(discount)}],
        tax_lines=[{"tax_rate_id": 1, "name": "Texas state sales tax", "rate": "6.25", "taxable_amount": str(taxable),
                    "amount": str(state)},
                   {"tax_rate_id": 2, "name": "Travis County", "rate": "2", "taxable_amount": str(taxable),
                    "amount": str(county)}],
        customer_snapshot={"external_id": "bench", "name": "Bench Industries LLC",
                           "address": "500 Congress Ave\nAustin, TX 78701", "country": "US", "region": "TX",
                           "email": "ap@bench.example", "collection_method": "send_invoice", "net_terms_days": 30,
                           "seller": {"name": "Ledgerline Demo Inc.", "address": "1 Market Street, San Francisco",
                                      "email": "billing@ledgerline.local", "tax_id": ""}},
    )
    return invoice, lines


def measure(invoice, lines, *, seconds: float, warmup: int) -> tuple[bytes, list[float], float]:
    from invoicing.pdf import render_invoice_pdf

    for _ in range(warmup):
        content = render_invoice_pdf(invoice, lines=lines)
    timings = []
    cpu = time.process_time()
    started = time.perf_counter()
    while time.perf_counter() - started < seconds or len(timings) < 5:
        t0 = time.perf_counter()
        content = render_invoice_pdf(invoice, lines=lines)
        timings.append(time.perf_counter() - t0)
    return content, timings, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="timed rendering for about this long, per engine")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--engine", choices=["canvas", "weasyprint", "both"], default="both")
    parser.add_argument("--out", default="", help="also write one rendered PDF here (per engine: NAME-ENGINE.pdf)")
    args = parser.parse_args()

    setup_django()
    import io

    from django.conf import settings
    from pypdf import PdfReader

    invoice, lines = twenty_line_invoice()
    engines = ["canvas", "weasyprint"] if args.engine == "both" else [args.engine]
    for engine in engines:
        settings.INVOICE_PDF_ENGINE = engine
        content, timings, cpu = measure(invoice, lines, seconds=args.seconds, warmup=args.warmup)
        elapsed = sum(timings)
        if args.out:
            out = Path(args.out)
            out.with_name(f"{out.stem}-{engine}{out.suffix or '.pdf'}").write_bytes(content)
        pages = len(PdfReader(io.BytesIO(content)).pages)
        print(f"{engine}: 20-line invoice, {len(content):,} bytes, {pages} page(s); rendered {len(timings)} PDFs in "
              f"{elapsed:.1f} s: {len(timings) / elapsed:.1f} PDFs/s (one process); median "
              f"{statistics.median(timings) * 1000:.1f} ms, max {max(timings) * 1000:.1f} ms, "
              f"{cpu / len(timings) * 1000:.1f} ms CPU each")
    if "canvas" in engines:
        print("target (issue 20): >= 20 PDFs/s per process with the default engine (canvas)")


if __name__ == "__main__":
    main()
