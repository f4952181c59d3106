"""Invoice documents at volume: the finalized invoices of the billing-run bench database rendered and
stored by real Celery workers, through the task finalization enqueues (`invoice_pdf_render`: read the
invoice and its lines, render, save the file, record `pdf_rendered_at`), without the e-mail step.

    .venv/bin/python bench/billing_run.py --keep         # once: 10,000 invoices in ledgerline_bench_billing
    REDIS_URL=redis://127.0.0.1:6379/15 .venv/bin/python bench/documents.py [--count 10000] [--workers 1 2]

Drafts left by the billing bench are finalized first (its auto-finalize sweep). For each N in --workers,
every sampled invoice loses its stored document, N `celery worker --pool solo` processes start, one
task per invoice is queued, and the wall time runs until the last document is stored. Files go to a
temporary MEDIA_ROOT, removed at exit. Prints documents/s per N, and checks one document's text against its invoice.
"""

from __future__ import annotations

import argparse
import atexit
import io
import os
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("BENCH_DB", "ledgerline_bench_billing")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")  # db 15: no other worker takes the tasks
MEDIA = tempfile.mkdtemp(prefix="ledgerline-bench-media-")
os.environ["MEDIA_ROOT"] = MEDIA
atexit.register(shutil.rmtree, MEDIA, ignore_errors=True)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import celery_workers, setup_django  # noqa: E402

AS_OF = date(2026, 4, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="invoices to render (the first N finalized)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    setup_django()
    from django.conf import settings
    from pypdf import PdfReader

    from billing_site.celery import app
    from invoicing.models import Invoice, InvoiceStatus
    from invoicing.services import invoices_auto_finalize
    from invoicing.tasks import invoice_pdf_render

    if not Invoice.objects.exists():
        sys.exit("no invoices in the bench database: run `.venv/bin/python bench/billing_run.py --keep` first")
    if Invoice.objects.filter(status=InvoiceStatus.DRAFT).exists():
        started = time.monotonic()
        swept = invoices_auto_finalize(today=AS_OF)
        print(f"finalized {swept.finalized:,} drafts in {time.monotonic() - started:.1f} s")
    ids = [str(pk) for pk in Invoice.objects.filter(status=InvoiceStatus.FINALIZED).order_by("number")
           .values_list("pk", flat=True)[:args.count]]
    print(f"{len(ids):,} finalized invoices; engine {settings.INVOICE_PDF_ENGINE}; files under {MEDIA}")

    walls = {}
    for n in args.workers:
        Invoice.objects.filter(pk__in=ids).update(pdf="", pdf_rendered_at=None)
        app.control.purge()  # finalization queued its own document tasks; this bench queues them itself
        with celery_workers(n):
            started = time.monotonic()
            for invoice_id in ids:
                invoice_pdf_render.delay(invoice_id, send_email=False)
            queued = time.monotonic() - started
            while (done := Invoice.objects.filter(pk__in=ids, pdf_rendered_at__isnull=False).count()) < len(ids):
                if time.monotonic() - started > 1800:
                    raise RuntimeError(f"only {done} of {len(ids)} documents after 30 minutes")
                time.sleep(0.2)
            walls[n] = time.monotonic() - started
        print(f"  {n} worker process(es): {len(ids):,} documents in {walls[n]:.1f} s → "
              f"{len(ids) / walls[n]:.1f} documents/s ({queued:.1f} s of it queueing the tasks)")

    sample = Invoice.objects.get(pk=ids[-1])
    with sample.pdf.open("rb") as handle:
        text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(handle.read())).pages)
    total = f"${sample.amount_due:,.2f}"
    assert sample.number in text and f"Amount due {total}" in text, (sample.number, total)
    print(f"  check {sample.number}: stored document names the invoice and its amount due {total} → OK")
    first = args.workers[0]
    for n, wall in walls.items():
        print(f"  speed-up {first} → {n} worker(s): × {walls[first] / wall:.2f}")


if __name__ == "__main__":
    main()
