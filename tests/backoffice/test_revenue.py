"""Revenue pages (revrec): figures hand-computed from the `books` fixture. Acme's January usage and
base fee ($10.00 + $20.00, billed in arrears) and Globex's ¥1,500 are finalized today: each invoice
entry debits accounts receivable and credits unbilled receivable (earned in January, billed now).
Closing a past month accrues January: Dr unbilled receivable / Cr revenue, one entry per invoice."""

from __future__ import annotations

from datetime import date, timedelta

from django.test import Client
from django.utils import timezone

from backoffice.selectors import month_start
from revrec.models import AccountingPeriod, JournalEntry

def _text(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()

def _this_month() -> str:
    return f"{timezone.localdate():%Y-%m}"

def _last_month() -> date:
    return month_start(timezone.localdate(), 1)

def test_revenue_page_shows_the_months_reports(books, viewer_client, billing_api):
    response = viewer_client.get(f"/revenue/?currency=USD&month={_this_month()}")
    text = _text(response)
    recon = response.context["reconciliation"]
    assert (recon["billed"], recon["collected"], recon["recognized"]) == ("30.00", "0.00", "0.00")
    assert {i["kind"]: i["amount"] for i in recon["billed_vs_collected"]}["outstanding"] == "30.00"
    assert {i["kind"]: i["amount"] for i in recon["billed_vs_recognized"]}["unbilled"] == "30.00"
    balances = {a["account"]: (a["debit"], a["credit"], a["balance"]) for a in response.context["trial_balance"]["accounts"]}
    assert balances["accounts_receivable"] == ("30.00", "0.00", "30.00")
    assert balances["unbilled_receivable"] == ("0.00", "30.00", "-30.00")
    assert balances["revenue"] == ("0.00", "0.00", "0.00")
    assert "$30.00" in text and "-$30.00" in text and "30.0000" not in text
    # The page's reports are the API's own.
    api = billing_api.get("/api/v1/revenue/reconciliation/", {"month": _this_month(), "currency": "USD"}).json()
    assert api == recon
    assert response.context["chart"]["labels"][-1] == _this_month() and len(response.context["chart"]["labels"]) == 12
    # Viewers see no close button; the month has not ended anyway.
    assert "Close " not in text and "has not ended" in text
    # JPY formatted without decimals.
    jpy = _text(viewer_client.get(f"/revenue/?currency=JPY&month={_this_month()}"))
    assert "¥1,500" in jpy and "1500.0000" not in jpy

def test_close_month_recognizes_january_and_viewer_is_refused(books, admin_client_bo, viewer_client):
    last = _last_month()
    month = f"{last:%Y-%m}"
    page = _text(admin_client_bo.get(f"/revenue/?currency=USD&month={month}"))
    assert f'<input type="hidden" name="month" value="{month}">' in page and "is not closed" in page
    viewer_page = _text(viewer_client.get(f"/revenue/?currency=USD&month={month}"))
    assert "read-only access" in viewer_page and 'name="month" value' not in viewer_page.split('id="close"')[1].split("</section>")[0]
    assert viewer_client.post("/revenue/close/", {"month": month}).status_code == 403
    assert viewer_client.get("/revenue/close/").status_code == 405
    assert not AccountingPeriod.objects.exists()
    # The current month cannot be closed: the service refuses and nothing changes.
    refused = admin_client_bo.post("/revenue/close/", {"month": _this_month()}, follow=True)
    assert "has not ended yet" in _text(refused) and not AccountingPeriod.objects.exists()
    bad = admin_client_bo.post("/revenue/close/", {"month": "2026-13"}, follow=True)
    assert "is not a month" in _text(bad)
    done = admin_client_bo.post("/revenue/close/", {"month": month, "currency": "USD"})
    assert done.status_code == 302 and done["Location"] == f"/revenue/?month={month}&currency=USD"
    period = AccountingPeriod.objects.get()
    assert (period.month, period.closed_by, period.summary["entries"]) == (last, "fin-admin", 2)
    accruals = JournalEntry.objects.filter(source_type="recognition").order_by("currency")
    assert [(e.currency, e.date, e.kind) for e in accruals] == [("JPY", date(2026, 1, 31), "accrual"),
                                                                ("USD", date(2026, 1, 31), "accrual")]
    after = admin_client_bo.get(f"/revenue/?currency=USD&month={month}")
    text = _text(after)

    assert "was closed" in text and "fin-admin" in text
    balances = {a["account"]: a["balance"] for a in after.context["trial_balance"]["accounts"]}
    assert (balances["unbilled_receivable"], balances["revenue"]) == ("30.00", "-30.00")  # through last month
    january = admin_client_bo.get("/revenue/?currency=USD&month=2026-01")
    assert {a["account"]: a["balance"] for a in january.context["trial_balance"]["accounts"]}["revenue"] == "-30.00"
    again = admin_client_bo.post("/revenue/close/", {"month": month}, follow=True)
    assert "closed already" in _text(again) and JournalEntry.objects.filter(source_type="recognition").count() == 2

def test_journal_filters(books, viewer_client):
    all_rows = viewer_client.get("/revenue/journal/")
    assert all_rows.context["rows"].paginator.count == 2
    usd = viewer_client.get("/revenue/journal/?currency=usd&source=invoice")
    (entry,) = usd.context["rows"]
    assert entry.memo == "Invoice INV-2026-000001" and "$30.00" in _text(usd) and "$20.00" in _text(usd)
    assert viewer_client.get("/revenue/journal/?account=revenue").context["rows"].paginator.count == 0
    assert viewer_client.get("/revenue/journal/?account=unbilled_receivable").context["rows"].paginator.count == 2
    (globex,) = viewer_client.get("/revenue/journal/?q=INV-2026-000002").context["rows"]
    assert globex.currency == "JPY"
    assert viewer_client.get("/revenue/journal/?q=acme").context["rows"].paginator.count == 1
    # `to` is exclusive. The entries carry each invoice's issue date, in its customer's timezone: Acme's
    # (New York) is the day before the server's between 00:00 and 05:00 UTC, so the dates come from the
    # entries, not from the clock.
    dates = sorted(JournalEntry.objects.values_list("date", flat=True))
    assert viewer_client.get(f"/revenue/journal/?to={dates[0]:%Y-%m-%d}").context["rows"].paginator.count == 0
    after_last = dates[-1] + timedelta(days=1)
    assert viewer_client.get(f"/revenue/journal/?to={after_last:%Y-%m-%d}").context["rows"].paginator.count == 2
    bad = viewer_client.get("/revenue/journal/?from=yesterday")
    assert "from: not a date" in _text(bad) and bad.context["rows"].paginator.count == 2
    assert 'href="/revenue/journal.csv?format=xero&amp;currency=usd"' in _text(usd) or \
        'href="/revenue/journal.csv?format=xero&currency=usd"' in _text(usd)

def test_csv_and_gl_downloads_are_the_apis(books, viewer_client, billing_api):
    for fmt in ("canonical", "quickbooks", "xero"):
        mine = viewer_client.get(f"/revenue/journal.csv?format={fmt}&currency=USD")
        api = billing_api.get("/api/v1/revenue/journal.csv", {"format": fmt, "currency": "USD"})
        assert mine.status_code == 200 and mine["Content-Type"].startswith("text/csv"), fmt
        assert mine.content == api.content and b"30.00" in mine.content, fmt
    month = _this_month()
    for name, params in [("rollforward", {"month": month}), ("reconciliation", {"month": month}),
                         ("trial_balance", {"month": month}), ("waterfall", {"from": month, "months": "1"}),
                         ("forecast", {})]:
        mine = viewer_client.get(f"/revenue/{name}.csv", {**params, "currency": "USD"})
        api = billing_api.get(f"/api/v1/revenue/{name}.csv", {**params, "currency": "USD"})
        assert mine.status_code == 200 and mine.content == api.content, name
    assert b"accounts_receivable,30.00,0.00,30.00" in viewer_client.get(
        "/revenue/trial_balance.csv", {"month": month, "currency": "USD"}).content
    assert viewer_client.get("/revenue/journal.csv?format=sage").status_code == 400
    assert viewer_client.get("/revenue/nothing.csv").status_code == 404
    assert Client().get("/revenue/journal.csv").status_code == 302
    assert Client().get("/revenue/").status_code == 302

def test_revenue_is_linked_in_the_navigation(viewer_client):
    assert 'data-nav="revenue"' in _text(viewer_client.get("/"))
