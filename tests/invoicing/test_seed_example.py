"""The seed promise: API access at 0.004 per call, 200.00 monthly minimum, anniversary billing
from March 5th; 180,000 calls → 720.00 on April 5th; 40,000 calls → 160.00 + 40.00 true-up."""

from datetime import date, datetime, timedelta, timezone

import pytest

from tests.invoicing.conftest import lines_of

pytestmark = pytest.mark.django_db


def _calls(n: int, start: datetime, span: timedelta):
    step = span / n
    return [(start + step * i).isoformat().replace("+00:00", "Z") for i in range(n)]


@pytest.fixture
def api_access(world):
    world.metric("api_calls")
    world.plan("api_access", name="API access", amount="0", pay_in_advance=False, minimum_commitment="200.00",
               charges=[{"billable_metric": "api_calls", "model": "standard", "properties": {"unit_amount": "0.004"}}])
    return world


@pytest.mark.parametrize("calls,expected_lines,total", [
    (180_000, [("usage", "api_calls", "180000", "720.00")], "720.00"),
    (40_000, [("usage", "api_calls", "40000", "160.00"), ("minimum_commitment", None, "1", "40.00")], "200.00"),
])
def test_seed_invoice(api_access, calls, expected_lines, total):
    world = api_access
    world.customer("seed")
    world.subscription("seed-sub", customer="seed", plan="api_access", start_date=date(2026, 3, 5),
                       billing_time="anniversary")
    assert world.events("api_calls", _calls(calls, datetime(2026, 3, 5, tzinfo=timezone.utc), timedelta(days=30)),
                        customer="seed") == calls

    assert world.run(date(2026, 4, 4))["invoices_created"] == 0  # the period closes on April 5th
    run = world.run(date(2026, 4, 5))
    assert run["invoices_created"] == 1

    (invoice,) = world.invoices(subscription="seed-sub")
    invoice = world.invoice(invoice["id"])
    assert lines_of(invoice) == expected_lines
    assert (invoice["issue_date"], invoice["period_start"], invoice["period_end"]) == ("2026-04-05", "2026-03-05", "2026-04-05")
    assert (invoice["subtotal"], invoice["total"], invoice["amount_due"]) == (total, total, total)
    assert invoice["status"] == "finalized" and invoice["number"] == "INV-2026-000001"
    assert invoice["due_date"] == "2026-05-05"  # net 30
