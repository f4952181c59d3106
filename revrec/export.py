"""GL export: the journal as import files (DESIGN.md §8, API.md "Revenue recognition").

- canonical: one row per journal line: entry_id, date, currency, source, source_id, kind, memo,
  account, debit, credit, invoice, note.
- QuickBooks Online journal import: `Journal No.`, `Journal Date`, `Account Name`, `Debits`,
  `Credits`, `Description`, `Name` (one row per line; the lines of an entry share its number).
- Xero manual journal import: `Narration`, `Date`, `Description`, `AccountCode`, `TaxRate`,
  `Amount` (signed: debits positive). Xero takes at most 300 lines per file (`xero_files`): an
  entry is never split across files.

Account names/codes: `ACCOUNT_NAMES` / `XERO_CODES` (the defaults of a small chart; finance maps
them in the package on import)."""

from __future__ import annotations

import csv
import io
import zipfile

from common.money import format_money
from revrec.models import Account

ACCOUNT_NAMES = {a.value: a.label for a in Account}
XERO_CODES = {"cash": "090", "accounts_receivable": "610", "unbilled_receivable": "611", "customer_credit": "815",
              "tax_payable": "820", "deferred_revenue": "835", "revenue": "200", "bad_debt": "470"}
XERO_MAX_LINES = 300

CANONICAL_COLUMNS = ["entry_id", "date", "currency", "source", "source_id", "kind", "memo", "account", "debit", "credit",
                     "invoice", "note"]
QUICKBOOKS_COLUMNS = ["Journal No.", "Journal Date", "Account Name", "Debits", "Credits", "Description", "Name"]
XERO_COLUMNS = ["Narration", "Date", "Description", "AccountCode", "TaxRate", "Amount"]


def _rows(entries):
    for entry in entries:
        for line in entry.lines.all():
            yield entry, line


def _write(columns, rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue()


def _amount(value, currency):
    return format_money(value, currency) if value else ""


def canonical_csv(entries) -> str:
    return _write(CANONICAL_COLUMNS, ([
        entry.pk, entry.date.isoformat(), entry.currency, entry.source_type, entry.source_id, entry.kind, entry.memo,
        line.account, format_money(line.debit, entry.currency), format_money(line.credit, entry.currency),
        str(entry.invoice_id or ""), entry.note] for entry, line in _rows(entries)))


def quickbooks_csv(entries, customer_names: dict | None = None) -> str:
    names = customer_names or {}
    return _write(QUICKBOOKS_COLUMNS, ([
        f"LL-{entry.pk}", entry.date.strftime("%m/%d/%Y"), ACCOUNT_NAMES[line.account],
        _amount(line.debit, entry.currency), _amount(line.credit, entry.currency), entry.memo,
        names.get(entry.customer_id, "")] for entry, line in _rows(entries)))


def _xero_rows(entry):
    for line in entry.lines.all():
        signed = line.debit - line.credit
        yield [f"{entry.memo} (LL-{entry.pk})", entry.date.strftime("%d/%m/%Y"), ACCOUNT_NAMES[line.account],
               XERO_CODES[line.account], "Tax Exempt", format_money(signed, entry.currency)]


def xero_files(entries, max_lines: int = XERO_MAX_LINES) -> list[str]:
    """One or more CSV files of at most `max_lines` lines each; an entry stays in one file."""
    files, current = [], []
    for entry in entries:
        rows = list(_xero_rows(entry))
        if current and len(current) + len(rows) > max_lines:
            files.append(_write(XERO_COLUMNS, current))
            current = []
        current.extend(rows)
    if current or not files:
        files.append(_write(XERO_COLUMNS, current))
    return files


def xero_export(entries, max_lines: int = XERO_MAX_LINES) -> tuple[str, bytes]:
    """(content type, body): one CSV when it fits in one file, else a zip of numbered files."""
    files = xero_files(entries, max_lines)
    if len(files) == 1:
        return "text/csv", files[0].encode()

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, body in enumerate(files, start=1):
            archive.writestr(f"xero-journal-{index:03d}.csv", body)
    return "application/zip", buffer.getvalue()
