"""Builders for dunning tests: a charge_automatically customer with a subscription, an invoice of
that subscription finalized through the API (so the real charge runs against the sandbox), and
`run_dunning --as-of` as the command."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.core.management import call_command

from tests.payments.factories import customer as payments_customer
from tests.payments.factories import draft_invoice
from tests.subscriptions.factories import SubscriptionFactory


def subscribed_customer(**kwargs):
    cust = payments_customer(**kwargs)
    sub = SubscriptionFactory(customer=cust, plan_version__amount=Decimal("100"))
    return cust, sub


def attach(api, cust, pm):
    response = api.post(f"/api/v1/customers/{cust.external_id}/payment_methods/", {"stripe_payment_method": pm},
                        format="json")
    assert response.status_code == 201, response.content
    return response.json()


def finalized_invoice(api, cust, sub, capture, amount="100.00"):
    invoice = draft_invoice(cust, amount)
    invoice.subscription = sub
    invoice.save(update_fields=["subscription"])
    with capture(execute=True):
        response = api.post(f"/api/v1/invoices/{invoice.pk}/finalize/")
    assert response.status_code == 200, response.content
    return api.get(f"/api/v1/invoices/{invoice.pk}/").json()


def run_dunning(as_of: datetime, capture=None) -> str:
    from io import StringIO

    out = StringIO()
    stamp = as_of.isoformat().replace("+00:00", "Z")
    if capture is None:
        call_command("run_dunning", as_of=stamp, stdout=out)
    else:
        with capture(execute=True):
            call_command("run_dunning", as_of=stamp, stdout=out)
    return out.getvalue()


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def days(n: float) -> timedelta:
    return timedelta(days=n)
