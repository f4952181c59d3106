"""The revenue API (API.md "Revenue recognition"), end to end through real billing runs."""

import csv
import io
from datetime import date
from decimal import Decimal as D

import pytest

from revrec.close import revrec_close
from revrec.postings import revrec_sync
from tests.invoicing.conftest import World, _fresh_partition_cache  # noqa: F401 (autouse fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(billing_api, admin_api, usage_api):
    return World(billing_api, admin_api, usage_api)


@pytest.fixture
def q1(books):
    invoice = books.invoice(issue=date(2025, 1, 1), lines=[("subscription", "100.00", date(2025, 1, 1), date(2025, 4, 1))])
    for m in (1, 2, 3):
        revrec_close(month=date(2025, m, 1))
    return invoice


def test_schedules_sum_to_the_line(reader_api, q1):
    body = reader_api.get("/api/v1/revenue/schedules/", {"invoice": str(q1.pk)}).json()
    (schedule,) = body["results"]
    assert schedule["obligation"] == "ratable" and schedule["amount"] == "100.00" and schedule["currency"] == "USD"
    assert (schedule["service_start"], schedule["service_end"]) == ("2025-01-01", "2025-04-01")
    assert schedule["entries"] == [{"month": "2025-01", "amount": "34.44"}, {"month": "2025-02", "amount": "31.12"},
                                   {"month": "2025-03", "amount": "34.44"}]


def test_schedules_bad_input(reader_api):
    assert reader_api.get("/api/v1/revenue/schedules/").json()["error"]["fields"] == {"invoice": ["required"]}
    assert reader_api.get("/api/v1/revenue/schedules/", {"invoice": "nope"}).status_code == 400
    assert reader_api.get("/api/v1/revenue/schedules/",
                          {"invoice": "00000000-0000-0000-0000-000000000000"}).status_code == 404


def test_journal_entries_balance_and_filter(reader_api, q1):
    body = reader_api.get("/api/v1/revenue/journal/", {"from": "2025-01-01", "to": "2025-02-01", "currency": "USD"}).json()
    entries = body["results"]
    assert [(e["date"], e["source"]) for e in entries] == [("2025-01-01", "invoice"), ("2025-01-31", "recognition")]
    assert entries[0]["source_id"] == str(q1.pk)
    for entry in entries:
        assert sum(D(ln["debit"]) for ln in entry["lines"]) == sum(D(ln["credit"]) for ln in entry["lines"])
    assert entries[1]["lines"] == [{"account": "deferred_revenue", "debit": "34.44", "credit": "0.00"},
                                   {"account": "revenue", "debit": "0.00", "credit": "34.44"}]
    assert reader_api.get("/api/v1/revenue/journal/", {"from": "January"}).status_code == 400


@pytest.mark.parametrize("fmt, first_column", [("canonical", "entry_id"), ("quickbooks", "Journal No."), ("xero", "Narration")])
def test_journal_csv_formats(reader_api, q1, fmt, first_column):
    response = reader_api.get("/api/v1/revenue/journal.csv", {"from": "2025-01-01", "to": "2025-04-01", "format": fmt})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][0] == first_column and len(rows) == 1 + 2 + 3 * 2


def test_journal_csv_unknown_format_is_400(reader_api):
    response = reader_api.get("/api/v1/revenue/journal.csv", {"format": "sage"})
    assert response.status_code == 400 and "format" in response.json()["error"]["fields"]


def test_reports(reader_api, q1):
    rf = reader_api.get("/api/v1/revenue/rollforward/", {"month": "2025-02", "currency": "USD"}).json()
    assert rf == {"month": "2025-02", "currency": "USD", "opening_deferred": "65.56", "billed": "0.00",
                  "recognized": "31.12", "credited": "0.00", "closing_deferred": "34.44"}
    recon = reader_api.get("/api/v1/revenue/reconciliation/", {"month": "2025-01", "currency": "USD"}).json()
    assert (recon["billed"], recon["collected"], recon["recognized"]) == ("100.00", "0.00", "34.44")
    assert {k["kind"]: k["amount"] for k in recon["billed_vs_recognized"]}["deferred"] == "65.56"
    assert sum(D(k["amount"]) for k in recon["billed_vs_collected"]) == D("100.00")
    wf = reader_api.get("/api/v1/revenue/waterfall/", {"from": "2025-01", "months": 3, "currency": "USD"}).json()
    assert wf["rows"][0]["billed"] == "100.00" and wf["rows"][0]["remaining"] == "0.00"
    assert [r["amount"] for r in wf["rows"][0]["recognized"]] == ["34.44", "31.12", "34.44"]
    tb = reader_api.get("/api/v1/revenue/trial_balance/", {"month": "2025-03"}).json()
    assert tb["total"] == "0.00" and {a["account"]: a["balance"] for a in tb["accounts"]}["revenue"] == "-100.00"
    csv_body = reader_api.get("/api/v1/revenue/rollforward.csv", {"month": "2025-02"}).content.decode()
    assert csv_body.splitlines()[1] == "2025-02,USD,65.56,0.00,31.12,0.00,34.44"
    for path in ("rollforward", "reconciliation", "trial_balance"):
        assert reader_api.get(f"/api/v1/revenue/{path}/", {"month": "2025-13"}).status_code == 400
    assert reader_api.get("/api/v1/revenue/rollforward/", {"month": "2025-01", "currency": "ZZZ"}).status_code == 400


def test_forecast_from_schedules_still_to_run(reader_api, books):
    books.invoice(issue=date(2025, 1, 1), lines=[("subscription", "100.00", date(2025, 1, 1), date(2025, 4, 1))])
    revrec_close(month=date(2025, 1, 1))
    body = reader_api.get("/api/v1/revenue/forecast/", {"currency": "USD"}).json()
    assert body["months"] == [{"month": "2025-02", "amount": "31.12"}, {"month": "2025-03", "amount": "34.44"}]
    assert body["total"] == "65.56"


def test_scopes(anon_api, usage_api, reader_api):
    assert anon_api.get("/api/v1/revenue/journal/").status_code == 401
    assert usage_api.get("/api/v1/revenue/journal/").status_code == 403
    assert reader_api.get("/api/v1/revenue/journal/").status_code == 200


def test_real_billing_cycle_books_balance(world, reader_api):
    """Pay-in-advance 100.00 monthly fee + 0.50 per call in arrears, billed through the real runs."""
    world.metric("calls")
    world.plan("pro", amount="100.00", charges=[{"billable_metric": "calls", "model": "standard",
                                                 "properties": {"unit_amount": "0.50"}}])
    world.customer("acme")
    world.subscription("sub-acme", customer="acme", plan="pro", start_date=date(2026, 1, 1))
    world.events("calls", [f"2026-01-{d:02d}T12:00:00Z" for d in range(1, 11)], subscription="sub-acme")
    world.run(date(2026, 1, 1))
    world.run(date(2026, 2, 1))
    revrec_sync()
    for month in (1, 2):
        revrec_close(month=date(2026, month, 1))
    # January: fee 100.00 recognized from deferred; usage 10 × 0.50 = 5.00 accrued (invoiced 1 February)
    jan = world.ok(reader_api.get("/api/v1/revenue/reconciliation/", {"month": "2026-01"}))
    assert D(jan["recognized"]) == D("105.00")
    tb = world.ok(reader_api.get("/api/v1/revenue/trial_balance/", {"month": "2026-01"}))
    assert {a["account"]: a["balance"] for a in tb["accounts"]}["unbilled_receivable"] == "5.00"
    for month in ("2026-01", "2026-02"):
        recon = world.ok(reader_api.get("/api/v1/revenue/reconciliation/", {"month": month}))
        assert sum(D(k["amount"]) for k in recon["billed_vs_collected"]) == D(recon["billed"]) - D(recon["collected"])
        assert sum(D(k["amount"]) for k in recon["billed_vs_recognized"]) == D(recon["billed"]) - D(recon["recognized"])
        assert world.ok(reader_api.get("/api/v1/revenue/trial_balance/", {"month": month}))["total"] == "0.00"


def test_reads_include_documents_finalized_a_moment_ago(reader_api, books):
    invoice = books.invoice(issue=date(2025, 1, 1), lines=[("subscription", "100.00", date(2025, 1, 1), date(2025, 4, 1))])
    body = reader_api.get("/api/v1/revenue/schedules/", {"invoice": str(invoice.pk)}).json()
    assert [e["amount"] for e in body["results"][0]["entries"]] == ["34.44", "31.12", "34.44"]
    journal = reader_api.get("/api/v1/revenue/journal/").json()["results"]
    assert [(e["source"], e["date"]) for e in journal] == [("invoice", "2025-01-01")]
