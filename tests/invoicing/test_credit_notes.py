"""Credit notes through the API and the services, with hand-computed figures.

The invoice used throughout: 100.00 (January base fee) + 49.99 (one call) = 149.99, taxed by two
rates: state 6.25% → 9.374375 → 9.37 and county 2% → 2.9998 → 3.00; tax 12.37, total 162.36."""

from datetime import date
from decimal import Decimal as D

import pytest

from catalog.services import tax_rate_create
from common.errors import ConflictError
from common.models import AuditEvent
from customers.models import Customer
from customers.selectors import customer_credit_balance
from invoicing.credit_notes import credit_note_create, credit_note_void
from invoicing.models import CreditNote, Invoice, InvoiceNumberSeries

pytestmark = pytest.mark.django_db


@pytest.fixture
def invoice(world):
    world.metric("calls")
    world.plan("pro", amount="100.00", pay_in_advance=False,
               charges=[{"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "49.99"}}])
    tax_rate_create(name="State tax", country="US", region="CA", rate="6.25")
    tax_rate_create(name="County tax", country="US", region="CA", rate="2")
    world.customer("acme", country="US", region="CA")
    world.subscription("sub-acme", customer="acme", plan="pro", start_date=date(2026, 1, 1))
    world.events("calls", ["2026-01-10T12:00:00Z"], subscription="sub-acme")
    world.run(date(2026, 2, 1))
    (body,) = world.invoices(subscription="sub-acme")
    assert (body["status"], body["subtotal"], body["tax"], body["total"], body["amount_due"]) == (
        "finalized", "149.99", "12.37", "162.36", "162.36")
    return body


def _post(api, invoice_id, body):
    return api.post(f"/api/v1/invoices/{invoice_id}/credit_notes/", body, format="json")


def _taxes(note):
    return [(t["name"], t["amount"]) for t in note["tax_lines"]]


def test_partial_then_remainder_sum_exactly_to_the_invoice(invoice, billing_api, world):
    # More than remains: 409, and no number is used up.
    too_much = _post(billing_api, invoice["id"], {"amount": "162.37", "reason": "overcharge"})
    assert too_much.status_code == 409 and too_much.json()["error"]["code"] == "credit_exceeds_remaining"

    # 50.00 of 162.36: state 9.37 × 50/162.36 = 2.8855 → 2.89; county 3.00 × 50/162.36 = 0.9239 → 0.92;
    # tax 3.81, net 46.19. It reduces the amount due: 162.36 − 50.00 = 112.36.
    first = _post(billing_api, invoice["id"], {"amount": "50.00", "reason": "service outage"})
    assert first.status_code == 201, first.content
    note = first.json()
    assert (note["number"], note["invoice"], note["currency"], note["status"], note["outcome"]) == (
        "CN-2026-000001", invoice["id"], "USD", "issued", "reduce_amount_due")
    assert (note["subtotal"], note["tax"], note["total"]) == ("46.19", "3.81", "50.00")
    assert _taxes(note) == [("County tax", "0.92"), ("State tax", "2.89")] or _taxes(note) == [
        ("State tax", "2.89"), ("County tax", "0.92")]
    assert [(ln["invoice_line"], ln["description"], ln["amount"]) for ln in note["lines"]] == [
        (None, "service outage", "46.19")]
    after = world.invoice(invoice["id"])
    assert (after["status"], after["amount_due"], after["total"]) == ("finalized", "112.36", "162.36")
    assert after["credit_notes"] == [{"id": note["id"], "number": "CN-2026-000001", "status": "issued",
                                      "outcome": "reduce_amount_due", "total": "50.00"}]

    # 112.37 is one cent too much.
    assert _post(billing_api, invoice["id"], {"amount": "112.37", "reason": "rest"}).status_code == 409
    # The remainder 112.36 takes each rate's exact remaining tax: state 9.37 − 2.89 = 6.48,
    # county 3.00 − 0.92 = 2.08; tax 8.56, net 103.80. The invoice is settled (paid).
    second = _post(billing_api, invoice["id"], {"amount": "112.36", "reason": "rest of the month"}).json()
    assert (second["number"], second["subtotal"], second["tax"], second["total"]) == (
        "CN-2026-000002", "103.80", "8.56", "112.36")
    assert dict(_taxes(second)) == {"State tax": "6.48", "County tax": "2.08"}
    # Credits sum exactly to the invoice: 46.19 + 103.80 = 149.99, 3.81 + 8.56 = 12.37.
    notes = CreditNote.objects.filter(invoice_id=invoice["id"])
    assert sum((n.subtotal for n in notes), D(0)) == D("149.99") and sum((n.tax for n in notes), D(0)) == D("12.37")
    settled = world.invoice(invoice["id"])
    assert (settled["status"], settled["amount_due"]) == ("paid", "0.00")
    nothing = _post(billing_api, invoice["id"], {"amount": "0.01", "reason": "again", "outcome": "credit_balance"})
    assert nothing.status_code == 409 and nothing.json()["error"]["code"] == "credit_exceeds_remaining"
    # Gapless: the refused attempts took no numbers.
    assert InvoiceNumberSeries.objects.get(series="CN", year=2026).last_value == 2

    listed = billing_api.get("/api/v1/credit_notes/", {"invoice": invoice["id"]}).json()["results"]
    assert sorted(n["number"] for n in listed) == ["CN-2026-000001", "CN-2026-000002"]
    detail = billing_api.get(f"/api/v1/credit_notes/{note['id']}/").json()
    assert detail["total"] == "50.00" and detail["invoice_number"] == invoice["number"]
    assert billing_api.get("/api/v1/credit_notes/not-a-uuid/").status_code == 404


def test_credit_specific_lines(invoice, billing_api):
    usage, base = sorted(invoice["lines"], key=lambda ln: ln["kind"] != "usage")
    assert (usage["kind"], usage["amount"], base["kind"], base["amount"]) == ("usage", "49.99", "subscription", "100.00")
    # The whole usage line: net 49.99; state 6.25% = 3.124375 → 3.12; county 2% = 0.9998 → 1.00; total 54.11.
    response = _post(billing_api, invoice["id"], {"reason": "usage billed twice", "lines": [{"line_id": usage["id"]}]})
    assert response.status_code == 201, response.content
    note = response.json()
    assert (note["subtotal"], note["tax"], note["total"]) == ("49.99", "4.12", "54.11")
    assert dict(_taxes(note)) == {"State tax": "3.12", "County tax": "1.00"}
    assert [(ln["invoice_line"], ln["amount"]) for ln in note["lines"]] == [(usage["id"], "49.99")]
    unknown = _post(billing_api, invoice["id"], {"reason": "x", "lines": [{"line_id": 999999}]})
    assert unknown.status_code == 400 and "lines[0].line_id" in unknown.json()["error"]["fields"]
    # Nothing of that line is left; more than the base line's 100.00 is refused.
    again = _post(billing_api, invoice["id"], {"reason": "x", "lines": [{"line_id": usage["id"], "amount": "0.01"}]})
    assert again.status_code == 409 and again.json()["error"]["code"] == "credit_exceeds_remaining"
    over = _post(billing_api, invoice["id"], {"reason": "x", "lines": [{"line_id": base["id"], "amount": "100.01"}]})
    assert over.status_code == 409
    # An amount that disagrees with the lines is a 400; 40.00 of the base line with tax 2.50 + 0.80 = 43.30.
    mismatch = _post(billing_api, invoice["id"], {"reason": "x", "amount": "40.00",
                                                  "lines": [{"line_id": base["id"], "amount": "40.00"}]})
    assert mismatch.status_code == 400 and mismatch.json()["error"]["code"] == "amount_mismatch"
    ok = _post(billing_api, invoice["id"], {"reason": "x", "amount": "43.30",
                                            "lines": [{"line_id": base["id"], "amount": "40.00"}]})
    assert ok.status_code == 201 and ok.json()["number"] == "CN-2026-000002"
    # The rest of the base line (60.00) completes the invoice: exact remaining tax 12.37 − 4.12 − 3.30 = 4.95.
    rest = _post(billing_api, invoice["id"], {"reason": "x", "lines": [{"line_id": base["id"]}]}).json()
    assert (rest["subtotal"], rest["tax"], rest["total"]) == ("60.00", "4.95", "64.95")
    assert D("54.11") + D("43.30") + D("64.95") == D("162.36")
    # Fully credited: nothing remains, whatever the line.
    assert _post(billing_api, invoice["id"], {"reason": "x", "lines": [{"line_id": base["id"]}]}).status_code == 409


def test_outcomes_credit_balance_refund_and_states(invoice, billing_api, world):
    # Outcome other than reduce_amount_due while something is due: 409.
    refused = _post(billing_api, invoice["id"], {"amount": "10.00", "reason": "x", "outcome": "refund"})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "outcome_not_allowed"
    assert billing_api.post(f"/api/v1/invoices/{invoice['id']}/mark_paid/", {}, format="json").status_code == 200
    # Paid: the default outcome is the customer's credit balance.
    note = _post(billing_api, invoice["id"], {"amount": "10.00", "reason": "goodwill"}).json()
    assert note["outcome"] == "credit_balance"
    customer = Customer.objects.get(external_id="acme")
    assert customer_credit_balance(customer=customer, currency="USD") == D("10.00")
    refund = _post(billing_api, invoice["id"], {"amount": "5.00", "reason": "refund", "outcome": "refund"}).json()
    assert refund["outcome"] == "refund"
    assert AuditEvent.objects.filter(action="credit_note.refund_requested", object_id=refund["id"]).exists()
    issued = AuditEvent.objects.get(action="credit_note.issued", object_id=note["id"])
    assert issued.inputs["total"] == "10.00" and issued.inputs["remaining_before"] == "162.36"
    assert _post(billing_api, invoice["id"], {"amount": "1.00", "reason": "x", "outcome": "reduce_amount_due"}).status_code == 409
    # Missing reason / amount: 400.
    assert _post(billing_api, invoice["id"], {"amount": "1.00"}).status_code == 400
    assert _post(billing_api, invoice["id"], {"reason": "x"}).status_code == 400
    assert _post(billing_api, invoice["id"], {"amount": "1.001", "reason": "x"}).status_code == 400


def test_draft_and_void_invoices_cannot_be_credited(world, billing_api):
    world.metric("calls")
    world.plan("pro", amount="100.00", pay_in_advance=False, charges=[])
    world.customer("d1", invoice_grace_period_days=30)
    world.subscription("s-d1", customer="d1", plan="pro", start_date=date(2026, 1, 1))
    world.run(date(2026, 2, 1))
    (draft,) = world.invoices(subscription="s-d1")
    assert draft["status"] == "draft"
    response = _post(billing_api, draft["id"], {"amount": "1.00", "reason": "x"})
    assert response.status_code == 409 and response.json()["error"]["code"] == "invalid_state"
    assert not InvoiceNumberSeries.objects.filter(series="CN").exists() or \
        InvoiceNumberSeries.objects.get(series="CN").last_value == 0


def test_void_a_credit_note_restores_the_amount_due(invoice, billing_api):
    note = _post(billing_api, invoice["id"], {"amount": "162.36", "reason": "wrong customer"}).json()
    assert Invoice.objects.get(pk=invoice["id"]).status == "paid"
    credit_note_void(credit_note=CreditNote.objects.get(pk=note["id"]), reason="issued by mistake")
    restored = Invoice.objects.get(pk=invoice["id"])
    assert (restored.status, restored.amount_due) == ("finalized", D("162.36"))
    with pytest.raises(ConflictError):
        credit_note_void(credit_note=CreditNote.objects.get(pk=note["id"]))
    # The voided note no longer counts: the whole invoice is creditable again, under a new number.
    again = credit_note_create(invoice=restored, amount=D("162.36"), reason="right this time")
    assert again.number == "CN-2026-000002"


def test_jpy_credit_note(world, billing_api):
    """JPY 3500, 10% tax 350, total 3850; credit 1000: tax 350 × 1000/3850 = 90.9 → 91, net 909."""
    world.metric("calls")
    world.plan("jp", currency="JPY", amount="1000", pay_in_advance=False,
               charges=[{"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "2500"}}])
    tax_rate_create(name="Consumption tax", country="JP", rate="10")
    world.customer("tokyo", currency="JPY", country="JP")
    world.subscription("s-tokyo", customer="tokyo", plan="jp", start_date=date(2026, 1, 1))
    world.events("calls", ["2026-01-10T12:00:00Z"], subscription="s-tokyo")
    world.run(date(2026, 2, 1))
    (inv,) = world.invoices(subscription="s-tokyo")
    assert (inv["total"], inv["tax"]) == ("3850", "350")
    note = _post(billing_api, inv["id"], {"amount": "1000", "reason": "discount agreed"}).json()
    assert (note["subtotal"], note["tax"], note["total"]) == ("909", "91", "1000")
    assert world.invoice(inv["id"])["amount_due"] == "2850"


def test_admin_lists_and_shows_credit_notes_and_voids_them(invoice, billing_api, admin_client):
    note = _post(billing_api, invoice["id"], {"amount": "50.00", "reason": "outage"}).json()
    listing = admin_client.get("/admin/invoicing/creditnote/", {"q": "CN-2026"})
    assert listing.status_code == 200 and b"CN-2026-000001" in listing.content
    page = admin_client.get(f"/admin/invoicing/creditnote/{note['id']}/change/")
    assert page.status_code == 200 and b"46.19" in page.content
    response = admin_client.post("/admin/invoicing/creditnote/", {"action": "void_selected",
                                                                  "_selected_action": [note["id"]]})
    assert response.status_code == 302
    assert CreditNote.objects.get(pk=note["id"]).status == "void"
    assert Invoice.objects.get(pk=invoice["id"]).amount_due == D("162.36")


def test_issuing_enqueues_the_credit_note_document(invoice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        note = credit_note_create(invoice=Invoice.objects.get(pk=invoice["id"]), amount=D("10.00"), reason="goodwill")
    assert len(callbacks) == 1
    note.refresh_from_db()
    assert note.pdf and note.pdf_rendered_at is not None  # eager Celery in tests renders and stores it
