"""GL export: canonical CSV, QuickBooks Online and Xero journal imports (golden files), Xero's 300-line split."""

import csv
import io
import zipfile
from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest

from revrec.export import canonical_csv, quickbooks_csv, xero_export, xero_files
from revrec.models import JournalEntry, JournalLine

GOLDEN = Path(__file__).parent / "golden"
pytestmark = pytest.mark.django_db


def _entry(pk, day, memo, source, kind, lines, customer=None):
    entry = JournalEntry.objects.create(pk=pk, date=day, currency="USD", memo=memo, source_type=source,
                                        source_id=f"src-{pk}", kind=kind, document_date=day, customer=customer)
    for account, debit, credit in lines:
        JournalLine.objects.create(entry=entry, account=account, debit=D(debit), credit=D(credit), currency="USD")
    return entry


@pytest.fixture
def entries(books):
    customer = books.customer("acme")
    _entry(900001, date(2025, 1, 1), "Invoice INV-2025-000001", "invoice", "finalized",
           [("accounts_receivable", "110.00", "0"), ("tax_payable", "0", "10.00"), ("deferred_revenue", "0", "100.00")],
           customer)
    _entry(900002, date(2025, 1, 20), "Payment on invoice INV-2025-000001", "payment", "received",
           [("cash", "110.00", "0"), ("accounts_receivable", "0", "110.00")], customer)
    _entry(900003, date(2025, 1, 31), "Revenue recognized 2025-01, invoice INV-2025-000001", "recognition",
           "recognition", [("deferred_revenue", "34.44", "0"), ("revenue", "0", "34.44")], customer)
    return list(JournalEntry.objects.filter(pk__in=[900001, 900002, 900003]).prefetch_related("lines").order_by("date", "pk"))


@pytest.mark.parametrize("name, render", [
    ("canonical.csv", canonical_csv),
    ("quickbooks.csv", lambda e: quickbooks_csv(e, {e[0].customer_id: "Acme"})),
    ("xero.csv", lambda e: xero_files(e)[0]),
])
def test_golden_files(entries, name, render):
    assert render(entries) == (GOLDEN / name).read_text().replace("\n", "\r\n")


def test_xero_debits_positive_and_every_file_balances(entries):
    rows = list(csv.DictReader(io.StringIO(xero_files(entries)[0])))
    assert list(rows[0]) == ["Narration", "Date", "Description", "AccountCode", "TaxRate", "Amount"]
    assert [r["Amount"] for r in rows[:3]] == ["110.00", "-10.00", "-100.00"]
    assert sum(D(r["Amount"]) for r in rows) == 0


def test_xero_splits_at_300_lines_without_splitting_an_entry(books):
    # 110 entries of 3 lines = 330 lines: the first file takes 100 entries (300 lines), the second 10.
    for n in range(110):
        _entry(910000 + n, date(2025, 2, 1), f"Invoice {n}", "invoice", "finalized",
               [("accounts_receivable", "11.00", "0"), ("tax_payable", "0", "1.00"), ("revenue", "0", "10.00")])
    entries = list(JournalEntry.objects.filter(pk__gte=910000).prefetch_related("lines").order_by("pk"))
    files = xero_files(entries)
    assert [len(f.strip().split("\r\n")) - 1 for f in files] == [300, 30]
    # 299-line cap: an entry of 3 lines that would cross it starts the next file
    assert [len(f.strip().split("\r\n")) - 1 for f in xero_files(entries, max_lines=299)] == [297, 33]
    content_type, body = xero_export(entries)
    assert content_type == "application/zip"
    assert zipfile.ZipFile(io.BytesIO(body)).namelist() == ["xero-journal-001.csv", "xero-journal-002.csv"]
