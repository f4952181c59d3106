"""A finance admin's month in the back office, without the API (issue 18 "Done when"): each step is
offered on the page where finance looks for it and goes through its service. Scenario: Initech's
February draft is held for review ($20.00 after $2.00 in January; calls at $1.00, no fee); Acme's January invoice ($30.00)
is open."""

from __future__ import annotations

import html
import re
from datetime import date
from decimal import Decimal

import pytest

from invoicing.models import Invoice
from revrec.models import AccountingPeriod
from tests.backoffice.conftest import at

pytestmark = pytest.mark.django_db


def _text(response) -> str:
    assert response.status_code == 200, response.status_code
    return html.unescape(re.sub(r"\s+", " ", response.content.decode()))


def _post(client, url, data=None) -> str:
    return _text(client.post(url, data or {}, follow=True))


def test_a_month_of_work_from_the_pages(books, world, admin_client_bo):
    world.plan("calls_only", pay_in_advance=False,
               charges=[{"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "1.00"}}])
    world.customer("initech")
    world.subscription("initech-1", customer="initech", plan="calls_only", start_date=date(2026, 1, 1))
    world.events("calls", [at(1, 5, h) for h in range(2)], customer="initech")
    world.run(date(2026, 2, 1))
    world.events("calls", [at(2, 5, h % 24) for h in range(20)], customer="initech")
    world.run(date(2026, 3, 1), finalize=False)
    flagged = Invoice.objects.get(subscription__external_id="initech-1", period_start=date(2026, 2, 1))
    assert flagged.needs_review and flagged.total == Decimal("20.00")  # 20 calls × $1.00, 10× January

    # Review: the queue links the draft; edit it (credit), then approve and finalize.
    review = _text(admin_client_bo.get("/review/"))
    assert f"/invoices/{flagged.pk}/#actions" in review and "Approve and finalize" in review
    page = _post(admin_client_bo, f"/invoices/{flagged.pk}/draft-credit/", {"amount": "10.00", "reason": "spike"})
    assert "amount due is now $20.00 → $10.00" in page
    page = _post(admin_client_bo, f"/invoices/{flagged.pk}/approve/")
    flagged.refresh_from_db()
    assert flagged.status == "finalized" and flagged.amount_due == Decimal("10.00")

    # Collect: record a payment on Acme's open invoice ($30.00 → $18.00 due).
    acme = books["acme-main"]
    page = _text(admin_client_bo.get(f"/invoices/{acme}/"))
    for offered in ("Record payment", "Issue credit note", "Mark uncollectible", "Resend by e-mail"):
        assert offered in page, offered
    assert "$18.00 remains due" in _post(admin_client_bo, f"/invoices/{acme}/pay/", {"amount": "12.00"})
    # Credit: a $3.00 credit note ($15.00 due).
    _post(admin_client_bo, f"/invoices/{acme}/credit/", {"amount": "3.00", "reason": "outage"})
    # Write off the rest.
    assert "($15.00 written off)" in _post(admin_client_bo, f"/invoices/{acme}/uncollectible/", {"reason": "gone"})
    assert Invoice.objects.get(pk=acme).status == "uncollectible"

    # Chase: the dunning page lists cases (retry now is on each case page, tested in test_dunning).
    assert "Dunning" in _text(admin_client_bo.get("/dunning/"))

    # Close January: revenue recognized, the period closed by the user.
    revenue = _text(admin_client_bo.get("/revenue/?month=2026-01"))
    assert 'action="/revenue/close/"' in revenue
    _post(admin_client_bo, "/revenue/close/", {"month": "2026-01"})
    assert AccountingPeriod.objects.get(month=date(2026, 1, 1)).closed_by == "fin-admin"

    # Export: the invoice list, payments and the revenue journal as CSV.
    invoices_csv = admin_client_bo.get("/invoices/export.csv").content.decode()
    assert flagged.number in invoices_csv and "uncollectible" in invoices_csv
    assert "12.00" in admin_client_bo.get("/payments/export.csv").content.decode()
    assert admin_client_bo.get("/revenue/journal.csv", {"month": "2026-01"}).status_code == 200
