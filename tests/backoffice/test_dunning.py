"""Dunning in the back office: a declined charge opens a case (dunning subscribes to payment.failed);
the cases list, the case timeline, the 360 page and the dashboard show it; viewers cannot retry."""

from __future__ import annotations

from dunning.models import DunningCase
from tests.backoffice.test_payments import _attach, stripe_on  # noqa: F401 (fixture)
from tests.payments.conftest import stripe_sandbox  # noqa: F401 (session fixture)


def _text(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_declined_charge_opens_a_case_shown_on_the_pages(books, stripe_on, billing_api, admin_client_bo,  # noqa: F811
                                                          viewer_client):
    acme = books["acme-main"]
    _attach(billing_api, "acme", "pm_card_chargeDeclinedInsufficientFunds")
    admin_client_bo.post(f"/invoices/{acme}/charge/", {})
    case = DunningCase.objects.get()
    assert (case.status, case.decline_code, str(case.invoice_id)) == ("open", "insufficient_funds", acme)
    listing = viewer_client.get("/dunning/?status=open")
    text = _text(listing)
    assert [i["case"].pk for i in listing.context["items"]] == [case.pk]
    assert "INV-2026-000001" in text and "$30.00" in text and "insufficient_funds" in text
    assert listing.context["items"][0]["next"] is not None  # a retry or an e-mail is scheduled
    detail = _text(viewer_client.get(f"/dunning/{case.pk}/"))
    assert 'id="case-timeline"' in detail and "read-only access" in detail and "Retry the charge now" not in detail
    assert "Retry the charge now" in _text(admin_client_bo.get(f"/dunning/{case.pk}/"))
    assert viewer_client.post(f"/dunning/{case.pk}/retry/").status_code == 403
    assert admin_client_bo.get("/").context["counts"].dunning_open == 1
    assert f'href="/dunning/{case.pk}/"' in _text(viewer_client.get("/customers/acme/"))
    assert 'data-nav="dunning"' in _text(viewer_client.get("/"))
