"""Usage consumed in a month and not invoiced at its close is accrued (Dr unbilled receivable /
Cr revenue) and released by its invoice (DESIGN.md §8 first bullet). Real billing runs, real
rating; figures by hand: 10.00 per API call."""

from datetime import date, datetime, timezone
from decimal import Decimal as D

import pytest

from invoicing.billing import billing_run
from invoicing.models import Invoice, InvoiceStatus
from invoicing.services import invoice_finalize, invoice_void
from revrec.close import revrec_close
from revrec.models import Account, JournalEntry, JournalLine, UsageAccrual
from revrec.postings import revrec_sync
from revrec.reports import reconciliation, rollforward, trial_balance
from subscriptions.models import BillingTime
from tests.catalog.factories import BillableMetricFactory, ChargeFactory
from tests.customers.factories import CustomerFactory
from tests.subscriptions.factories import SubscriptionFactory
from usage.services.ingest import event_ingest_batch

pytestmark = pytest.mark.django_db


@pytest.fixture
def anniversary():
    """Anniversary monthly subscription from Mar 5 (periods Mar 5 – Apr 5 – May 5), no base fee,
    10.00 per API call."""
    calls = BillableMetricFactory(code="api_calls", aggregation="count")
    sub = SubscriptionFactory(customer=CustomerFactory(external_id="acme"), external_id="sub_ann",
                              billing_time=BillingTime.ANNIVERSARY, start_date=date(2026, 3, 5),
                              plan_version__amount=D("0"))
    ChargeFactory(plan_version=sub.plan_version, billable_metric=calls, model="standard",
                  properties={"unit_amount": "10"})
    return sub


def _calls(prefix, timestamps):
    body = [{"transaction_id": f"{prefix}{i}", "subscription": "sub_ann", "code": "api_calls", "timestamp": ts,
             "properties": {}} for i, ts in enumerate(timestamps)]
    assert event_ingest_batch(events=body).accepted == len(body)


def _bill(as_of):
    billing_run(as_of=as_of, now=datetime(as_of.year, as_of.month, as_of.day, 12, tzinfo=timezone.utc))
    for invoice in Invoice.objects.filter(status=InvoiceStatus.DRAFT):
        invoice_finalize(invoice=invoice)
    revrec_sync()


def _balances(through):
    tb = trial_balance(currency="USD", through=through)
    assert D(tb["total"]) == 0
    return {a["account"]: D(a["balance"]) for a in tb["accounts"]}


def _lines(entry):
    return sorted((ln.account, ln.debit, ln.credit) for ln in JournalLine.objects.filter(entry=entry))


def _identities(month):
    rollforward(month=month, currency="USD")  # asserts its identity
    rec = reconciliation(month=month, currency="USD")  # asserts the kinds sum exactly
    return rec


def test_close_before_billing_accrues_march_usage_and_the_invoice_releases_it(anniversary):
    _bill(date(2026, 3, 5))  # opens the period (fee 0)
    _calls("m", ["2026-03-10T12:00:00Z"] * 12)  # 120.00 in March
    _calls("a", ["2026-04-02T12:00:00Z"] * 3)   # 30.00 in April, same billing period

    summary = revrec_close(month=date(2026, 3, 1))
    assert summary["usage_accruals"] == 1
    (accrual,) = UsageAccrual.objects.all()
    assert (accrual.period_start, accrual.period_end, accrual.amount, accrual.rated_through) == (
        date(2026, 3, 5), date(2026, 4, 5), D("120.00"), date(2026, 4, 1))
    entry = JournalEntry.objects.get(kind="usage_accrual")
    assert entry.date == date(2026, 3, 31) and entry.customer_id == anniversary.customer_id
    assert _lines(entry) == [(Account.REVENUE, D(0), D("120.00")), (Account.UNBILLED_RECEIVABLE, D("120.00"), D(0))]
    march = reconciliation(month=date(2026, 3, 1), currency="USD")
    assert D(march["recognized"]) == D("120.00")
    assert {k["kind"]: D(k["amount"]) for k in march["billed_vs_recognized"]}["unbilled"] == D("-120.00")
    _identities(date(2026, 3, 1))

    before = JournalEntry.objects.count()
    assert revrec_close(month=date(2026, 3, 1))["already_closed"] is True
    assert JournalEntry.objects.count() == before  # rerunning the close changes nothing

    _bill(date(2026, 4, 5))
    invoice = Invoice.objects.get(billing_date=date(2026, 4, 5))
    usage = invoice.lines.get(kind="usage")
    assert (usage.amount, usage.period_start, usage.period_end) == (D("150.00"), date(2026, 3, 5), date(2026, 4, 5))
    posted = JournalEntry.objects.get(source_type="invoice", kind="finalized", invoice=invoice)
    assert posted.date == date(2026, 4, 5)
    # Cr unbilled for the accrued 120.00, revenue for the April days' 30.00
    assert _lines(posted) == [(Account.ACCOUNTS_RECEIVABLE, D("150.00"), D(0)), (Account.REVENUE, D(0), D("30.00")),
                              (Account.UNBILLED_RECEIVABLE, D(0), D("120.00"))]
    assert "released from unbilled receivable" in posted.note
    accrual.refresh_from_db()
    assert accrual.released_invoice_id == invoice.pk

    revrec_close(month=date(2026, 4, 1))
    balances = _balances(date(2026, 4, 30))
    assert balances.get(Account.UNBILLED_RECEIVABLE, D(0)) == 0
    assert balances[Account.REVENUE] == D("-150.00")
    assert not JournalEntry.objects.filter(kind="usage_accrual", date=date(2026, 4, 30)).exists()
    april = _identities(date(2026, 4, 1))
    assert D(april["recognized"]) == D("30.00") and D(april["billed"]) == D("150.00")
    assert {k["kind"]: D(k["amount"]) for k in april["billed_vs_recognized"]}["unbilled"] == D("120.00")


def test_close_after_the_invoice_accrues_nothing_twice(anniversary):
    _bill(date(2026, 3, 5))
    _calls("m", ["2026-03-10T12:00:00Z"] * 12)
    _bill(date(2026, 4, 5))  # invoiced before March closes: the invoice schedule carries March
    revrec_close(month=date(2026, 3, 1))
    assert not UsageAccrual.objects.exists()
    balances = _balances(date(2026, 3, 31))
    march = reconciliation(month=date(2026, 3, 1), currency="USD")
    # 120.00 over Mar 5 – Apr 5 by day: 27/31 in March = 104.52 accrued from the invoice schedule
    assert D(march["recognized"]) == D("104.52")
    assert balances[Account.UNBILLED_RECEIVABLE] == D("104.52")


def test_period_spanning_two_closes_accrues_increments_and_a_void_unreleases(anniversary):
    _bill(date(2026, 3, 5))
    _calls("m", ["2026-03-10T12:00:00Z"] * 12)
    revrec_close(month=date(2026, 3, 1))
    _calls("a", ["2026-04-02T12:00:00Z"] * 3)
    # Weekly would not fit a month; here a second period starts Apr 5: usage Apr 6 belongs to it.
    _calls("b", ["2026-04-06T12:00:00Z"] * 2)
    revrec_close(month=date(2026, 4, 1))  # billing run of Apr 5 not done: both periods accrue
    rows = {(a.period_start, a.month): a.amount for a in UsageAccrual.objects.all()}
    assert rows == {(date(2026, 3, 5), date(2026, 3, 1)): D("120.00"),
                    (date(2026, 3, 5), date(2026, 4, 1)): D("30.00"),
                    (date(2026, 4, 5), date(2026, 4, 1)): D("20.00")}
    assert _balances(date(2026, 4, 30))[Account.UNBILLED_RECEIVABLE] == D("170.00")
    _identities(date(2026, 4, 1))

    _bill(date(2026, 4, 5))  # April is closed when its invoice posts
    invoice = Invoice.objects.get(billing_date=date(2026, 4, 5))
    posted = JournalEntry.objects.get(source_type="invoice", kind="finalized", invoice=invoice)
    assert posted.date == date(2026, 5, 1)  # April is closed: first open day
    assert _lines(posted) == [(Account.ACCOUNTS_RECEIVABLE, D("150.00"), D(0)),
                              (Account.UNBILLED_RECEIVABLE, D(0), D("150.00"))]
    assert _balances(date(2026, 5, 31))[Account.UNBILLED_RECEIVABLE] == D("20.00")  # the open period's

    invoice_void(invoice=Invoice.objects.get(pk=invoice.pk))
    revrec_sync()  # the void posts on its own date (today)
    assert _balances(date(2099, 1, 1))[Account.UNBILLED_RECEIVABLE] == D("170.00")
    assert not UsageAccrual.objects.filter(released_invoice__isnull=False).exists()
