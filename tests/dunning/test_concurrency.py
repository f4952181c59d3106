"""Two `run_dunning` processes at once (threads with their own database connections) against the
sandbox: every due retry charges once, and a rerun charges nothing."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
import stripe
from django.conf import settings
from django.core.management import call_command

from dunning.models import DunningCase, DunningPolicy, DunningStep
from dunning.services import policy_default
from invoicing.services import invoice_finalize
from payments.models import PaymentAttempt
from payments.services import payment_method_attach
from tests.payments.factories import customer, draft_invoice
from tests.race import race

pytestmark = pytest.mark.django_db(transaction=True)


def _intents(stripe_customer: str) -> int:
    client = stripe.StripeClient("sk_test_x", base_addresses={"api": settings.STRIPE_API_BASE})
    # The sandbox lives for the whole test session: page through every intent it holds.
    intents = client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
    return sum(1 for pi in intents if pi["customer"] == stripe_customer)


def _run(as_of):
    call_command("run_dunning", as_of=as_of.isoformat(), stdout=StringIO())


@pytest.mark.parametrize("round_", range(2))
def test_two_concurrent_sweeps_never_charge_twice(round_):
    # (a transactional test's flush removed the migration's default policy: policy_default() recreates it)
    DunningPolicy.objects.filter(pk=policy_default().pk).update(payday_alignment=False)
    invoices = []
    for _ in range(4):
        cust = customer()
        payment_method_attach(customer=cust, stripe_payment_method="pm_card_chargeDeclinedInsufficientFunds")
        invoices.append(invoice_finalize(invoice=draft_invoice(cust, "25.00")))
    cases = list(DunningCase.objects.filter(invoice__in=invoices))
    assert len(cases) == 4 and {c.status for c in cases} == {"open"}
    as_of = max(c.first_failed_at for c in cases) + timedelta(days=2)  # retry 1 (day 1) is due, retry 2 is not

    errors = race(lambda: _run(as_of), lambda: _run(as_of)).errors
    assert errors == []
    for invoice in invoices:
        assert PaymentAttempt.objects.filter(invoice=invoice).count() == 2  # the first charge + one retry
        invoice.customer.refresh_from_db()
        assert _intents(invoice.customer.stripe_customer_id) == 2
        case = DunningCase.objects.get(invoice=invoice)
        assert DunningStep.objects.filter(case=case, kind="retry", status="done").count() == 1

    # Rerun, twice at once again: nothing more.
    errors = race(lambda: _run(as_of), lambda: _run(as_of)).errors
    assert errors == []
    assert PaymentAttempt.objects.filter(invoice__in=invoices).count() == 8
