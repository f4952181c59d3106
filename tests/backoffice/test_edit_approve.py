"""Edit and approve a flagged draft from its page: a one-off credit, a price override for the period,
the draft recomputed (hand-computed figures), then approved; viewers refused; CSRF required."""

from __future__ import annotations

import html
import re
from datetime import date
from decimal import Decimal

import pytest
from django.test import Client

from catalog.models import PlanVersion
from common.models import AuditEvent
from customers.models import CreditGrant
from invoicing.models import Invoice
from tests.backoffice.conftest import at

pytestmark = pytest.mark.django_db


def _text(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", response.content.decode()))


def _flagged(world, *, charges=None, minimum_commitment=None) -> Invoice:
    """Initech: 2 calls in January ($2.00), then 20 calls in February at $1.00 → a $20.00 February draft
    held for review (more than 3× the recent invoices). No tax (no country), no coupon."""
    world.metric("calls")
    world.plan("metered", pay_in_advance=False, minimum_commitment=minimum_commitment,
               charges=charges or [{"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "1.00"}}])
    world.customer("initech")
    world.subscription("initech-1", customer="initech", plan="metered", start_date=date(2026, 1, 1))
    world.events("calls", [at(1, 5, h) for h in range(2)], customer="initech")
    world.run(date(2026, 2, 1))
    world.events("calls", [at(2, 5, h % 24) for h in range(20)], customer="initech")
    world.run(date(2026, 3, 1))
    draft = Invoice.objects.get(subscription__external_id="initech-1", period_start=date(2026, 2, 1))
    assert (draft.status, draft.needs_review) == ("draft", True)
    return draft


def _usage_line(draft: Invoice):
    return draft.lines.get(kind="usage")


def test_credit_then_approve(world, admin_client_bo):
    draft = _flagged(world)
    assert (draft.total, draft.amount_due) == (Decimal("20.00"), Decimal("20.00"))
    page = _text(admin_client_bo.get(f"/invoices/{draft.pk}/"))
    assert "Edit: grant a credit" in page and "Edit: override a price" in page

    done = _text(admin_client_bo.post(f"/invoices/{draft.pk}/draft-credit/",
                                      {"amount": "5.00", "reason": "Usage spike goodwill"}, follow=True))
    # $20.00 total − $5.00 prepaid credit = $15.00 due; the draft page shows the recomputed totals.
    assert "Granted $5.00 of prepaid credit to Initech; the draft's amount due is now $20.00 → $15.00." in done, \
        done[done.find("messages"):done.find("messages") + 500]
    assert "Prepaid credits applied" in done and 'data-field="amount_due">$15.00<' in done
    draft.refresh_from_db()
    assert (draft.status, draft.total, draft.prepaid_applied, draft.amount_due) == (
        "draft", Decimal("20.00"), Decimal("5.00"), Decimal("15.00"))
    grant = CreditGrant.objects.get(customer__external_id="initech")
    assert (grant.amount, grant.remaining, grant.currency) == (Decimal("5.00"), Decimal("5.00"), "USD")

    done = _text(admin_client_bo.post(f"/invoices/{draft.pk}/approve/", {"next": "/review/"}, follow=True))
    draft.refresh_from_db()
    assert draft.status == "finalized" and f"Approved and finalized as {draft.number}." in done
    assert (draft.total, draft.prepaid_applied, draft.amount_due) == (Decimal("20.00"), Decimal("5.00"), Decimal("15.00"))
    grant.refresh_from_db()
    assert grant.remaining == Decimal("0.00")  # spent on this invoice at finalize
    assert AuditEvent.objects.filter(action="invoice.draft_credited", object_id=str(draft.pk)).count() == 1


def test_price_override_reprices_the_line_then_approve(world, admin_client_bo):
    draft = _flagged(world)
    line = _usage_line(draft)
    base = line.plan_version
    done = _text(admin_client_bo.post(f"/invoices/{draft.pk}/draft-reprice/",
                                      {"line": line.pk, "unit_amount": "0.60"}, follow=True))
    # 20 calls × $0.60 = $12.00.
    assert "Repriced calls for this period; the draft's total is now $20.00 → $12.00." in done
    draft.refresh_from_db()
    line.refresh_from_db()
    assert (line.amount, line.unit_amount, line.quantity) == (Decimal("12.00"), Decimal("0.60"), Decimal("20"))
    assert (draft.subtotal, draft.total, draft.amount_due) == (Decimal("12.00"), Decimal("12.00"), Decimal("12.00"))
    override = line.plan_version
    assert override.pk != base.pk and override.customer.external_id == "initech" and override.based_on_id == base.pk
    assert line.charge.plan_version_id == override.pk and line.charge.properties["unit_amount"] == "0.60"
    assert line.metadata["price_override"]["amount_before"] == "20.00"
    # The subscription stays on its version: the override is for this period only.
    assert draft.subscription.plan_version_id == base.pk
    assert "$12.00" in done and "$0.60" in done

    admin_client_bo.post(f"/invoices/{draft.pk}/approve/")
    draft.refresh_from_db()
    assert (draft.status, draft.total, draft.amount_due) == ("finalized", Decimal("12.00"), Decimal("12.00"))


def test_graduated_override_and_credit_together(world, admin_client_bo):
    draft = _flagged(world)
    line = _usage_line(draft)
    tiers = {"tiers": [{"up_to": 10, "unit_amount": "1.00"}, {"up_to": None, "unit_amount": "0.50"}]}
    import json

    admin_client_bo.post(f"/invoices/{draft.pk}/draft-reprice/", {"line": line.pk, "model": "graduated",
                                                                 "properties": json.dumps(tiers)})
    # Graduated on 20 calls: 10 × $1.00 + 10 × $0.50 = $15.00; then a $4.00 credit → $11.00 due.
    admin_client_bo.post(f"/invoices/{draft.pk}/draft-credit/", {"amount": "4", "reason": "goodwill"})
    draft.refresh_from_db()
    line = _usage_line(draft)
    assert line.amount == Decimal("15.00") and line.charge.model == "graduated"
    assert [(Decimal(t["units"]), Decimal(t["amount"])) for t in line.tiers] == [(10, Decimal("10.00")), (10, Decimal("5.00"))]
    assert (draft.total, draft.prepaid_applied, draft.amount_due) == (Decimal("15.00"), Decimal("4.00"), Decimal("11.00"))
    page = _text(admin_client_bo.get(f"/invoices/{draft.pk}/"))
    assert "$15.00" in page and "$11.00" in page


def test_bad_input_is_named_and_nothing_changes(world, admin_client_bo):
    draft = _flagged(world)
    line = _usage_line(draft)
    for data, message in [
        ({"line": line.pk}, "Give a unit price or the charge"),
        ({"line": line.pk, "unit_amount": "-1"}, "unit_amount"),
        ({"line": line.pk, "properties": "{not json"}, "properties"),
        ({"line": line.pk, "properties": '{"unit_amount": "abc"}'}, "unit_amount"),
        ({"line": 999999, "unit_amount": "1"}, "line: not a usage line of this draft"),
    ]:
        page = _text(admin_client_bo.post(f"/invoices/{draft.pk}/draft-reprice/", data, follow=True))
        assert 'class="msg error' in page or "error" in page, data
        assert message in page, (data, page[page.find("messages"):page.find("messages") + 400])
    page = _text(admin_client_bo.post(f"/invoices/{draft.pk}/draft-credit/", {"amount": "5"}, follow=True))
    assert "reason" in page
    draft.refresh_from_db()
    assert (draft.total, draft.amount_due) == (Decimal("20.00"), Decimal("20.00"))
    assert not PlanVersion.objects.filter(customer__isnull=False).exists() and not CreditGrant.objects.exists()


def test_only_drafts_and_no_minimum_commitment(world, admin_client_bo):
    draft = _flagged(world, minimum_commitment="5.00")  # January: $2.00 + $3.00 true-up
    line = _usage_line(draft)
    page = _text(admin_client_bo.post(f"/invoices/{draft.pk}/draft-reprice/", {"line": line.pk, "unit_amount": "0.5"},
                                      follow=True))
    assert "minimum commitment" in page
    admin_client_bo.post(f"/invoices/{draft.pk}/approve/")
    page = _text(admin_client_bo.post(f"/invoices/{draft.pk}/draft-credit/", {"amount": "1", "reason": "x"}, follow=True))
    assert "Only a draft can be edited; this invoice is finalized." in page
    assert not CreditGrant.objects.exists()


def test_viewer_refused_and_csrf_required(world, viewer_client, finance_admin):
    draft = _flagged(world)
    line = _usage_line(draft)
    assert "Edit: grant a credit" not in _text(viewer_client.get(f"/invoices/{draft.pk}/"))
    assert viewer_client.post(f"/invoices/{draft.pk}/draft-credit/", {"amount": "5", "reason": "x"}).status_code == 403
    assert viewer_client.post(f"/invoices/{draft.pk}/draft-reprice/",
                              {"line": line.pk, "unit_amount": "0.1"}).status_code == 403
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(finance_admin)
    assert strict.post(f"/invoices/{draft.pk}/draft-credit/", {"amount": "5", "reason": "x"}).status_code == 403
    assert strict.get(f"/invoices/{draft.pk}/draft-credit/").status_code == 405
    draft.refresh_from_db()
    assert draft.amount_due == Decimal("20.00") and not CreditGrant.objects.exists()


def test_review_queue_links_to_the_edit_actions(world, admin_client_bo):
    draft = _flagged(world)
    page = _text(admin_client_bo.get("/review/"))
    assert f'href="/invoices/{draft.pk}/#actions">Edit: credit or price override' in page
