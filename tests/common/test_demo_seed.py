"""The demo data set loads through the services, bills the seed example exactly, and reloads idempotently."""

from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import pytest

from demo.data import seed_demo
from invoicing.models import Invoice

pytestmark = pytest.mark.django_db


def test_seed_demo_bills_the_seed_example_and_is_idempotent():
    first = seed_demo(today=date(2026, 10, 15))
    assert first["events rejected"] == 0
    acme = Invoice.objects.get(subscription__external_id="sub_acme_api", period_start=date(2026, 3, 5))
    # One catch-up run on Oct 15 bills every period since March: its as_of is its "now" (issue date).
    assert (acme.billing_date, acme.issue_date, acme.period_end, acme.total) == (
        date(2026, 4, 5), date(2026, 10, 15), date(2026, 4, 5), Decimal("720.00"))
    initech = Invoice.objects.get(subscription__external_id="sub_initech_api", period_start=date(2026, 3, 5))
    assert sorted((line.kind, line.amount) for line in initech.lines.all()) == [
        ("minimum_commitment", Decimal("40.00")), ("usage", Decimal("160.00"))]
    assert initech.total == Decimal("200.00")

    # Hooli (FR): LAUNCH20 takes 20% off, then 20% VAT on what remains; Umbrella's prepaid yen pay first.
    hooli = Invoice.objects.filter(customer__external_id="hooli").order_by("issue_date").first()
    assert hooli.discount == (hooli.subtotal * Decimal("0.20")).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert hooli.tax == ((hooli.subtotal - hooli.discount) * Decimal("0.20")).quantize(Decimal("0.01"), ROUND_HALF_UP)
    umbrella = Invoice.objects.filter(customer__external_id="umbrella").order_by("issue_date").first()
    assert umbrella.prepaid_applied == min(Decimal(10000), umbrella.total) and umbrella.tax > 0

    count = Invoice.objects.count()
    again = seed_demo(today=date(2026, 10, 15))
    assert again["events accepted"] == 0 and again["events duplicates"] == first["events accepted"]
    assert again["invoices created by the billing run"] == 0
    assert Invoice.objects.count() == count
