"""Races with real, separate database connections (one per thread)."""

import threading
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from invoicing.billing import billing_run
from invoicing.models import BillingRun, Invoice, InvoiceLine, InvoiceStatus
from invoicing.services import invoice_finalize
from common.errors import ConflictError
from subscriptions.models import Subscription
from tests.catalog.factories import BillableMetricFactory, ChargeFactory, PlanVersionFactory
from tests.race import race
from tests.subscriptions.factories import SubscriptionFactory
from usage.services.ingest import event_ingest_batch

pytestmark = pytest.mark.django_db(transaction=True)


def _subscriptions(n: int, *, calls_each: int = 2):
    metric = BillableMetricFactory(code="calls")
    version = PlanVersionFactory(amount=Decimal("10"), pay_in_advance=True, plan__currency="USD")
    ChargeFactory(plan_version=version, billable_metric=metric, properties={"unit_amount": "1"})
    subs = [SubscriptionFactory(plan_version=version, start_date=date(2026, 1, 1)) for _ in range(n)]
    events = [{"transaction_id": f"t-{s.pk}-{i}", "subscription": s.external_id, "code": "calls",
               "timestamp": f"2026-01-{10 + i:02d}T00:00:00Z", "properties": {}} for s in subs for i in range(calls_each)]
    result = event_ingest_batch(events=events, now=datetime(2026, 2, 1, tzinfo=timezone.utc))
    assert result.accepted == len(events)
    return subs


def test_two_concurrent_runs_never_duplicate():
    subs = _subscriptions(40)
    errors = race(*[lambda: billing_run(as_of=date(2026, 2, 1), chunk_size=7)] * 2, join_timeout=60).errors
    assert errors == []
    # Each subscription: Jan 1 (January in advance) and Feb 1 (February in advance + January usage).
    assert Invoice.objects.count() == 2 * len(subs)
    assert sorted(BillingRun.objects.values_list("invoices_created", flat=True)) != [0, 0]
    assert sum(BillingRun.objects.values_list("invoices_created", flat=True)) == 2 * len(subs)
    assert sum(BillingRun.objects.values_list("error_count", flat=True)) == 0
    assert InvoiceLine.objects.filter(kind="usage").count() == len(subs)
    assert {str(a) for a in InvoiceLine.objects.filter(kind="usage").values_list("amount", flat=True)} == {"2.0000"}
    assert set(Subscription.objects.values_list("usage_billed_through", "advance_billed_through")) == {
        (date(2026, 2, 1), date(2026, 3, 1))}
    # Every finalized invoice has its own number, 1..N without gaps.
    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    assert numbers == [f"INV-2026-{i:06d}" for i in range(1, 2 * len(subs) + 1)]


def test_concurrent_finalization_gives_gapless_numbers():
    _subscriptions(24, calls_each=0)
    billing_run(as_of=date(2026, 1, 1), auto_finalize=False)
    drafts = list(Invoice.objects.filter(status=InvoiceStatus.DRAFT).values_list("pk", flat=True))
    assert len(drafts) == 24

    def finalize_all(order):
        for pk in order:
            try:
                invoice_finalize(invoice=Invoice(pk=pk))
            except ConflictError:
                pass  # the other thread got there first

    orders = (drafts, list(reversed(drafts)), drafts[::2] + drafts[1::2])
    errors = race(*[lambda order=order: finalize_all(order) for order in orders], join_timeout=60).errors
    assert errors == []
    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    assert numbers == [f"INV-2026-{i:06d}" for i in range(1, 25)]
    assert Invoice.objects.filter(status=InvoiceStatus.FINALIZED).count() == 24


def test_crashed_chunk_leaves_no_partial_state_and_rerun_resumes(monkeypatch):
    """A failure that is not one subscription's fault (the database connection dies mid-chunk) fails
    the run; a subscription's own failure is isolated instead (tests/invoicing/test_billing_runs.py)."""
    from django.db import OperationalError

    subs = _subscriptions(6, calls_each=1)
    import invoicing.billing as billing

    original = billing._ChunkBuilder.insert
    calls = {"n": 0}

    def crash_second_chunk(self):
        calls["n"] += 1
        original(self)
        if calls["n"] == 2:
            raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(billing._ChunkBuilder, "insert", crash_second_chunk)
    with pytest.raises(OperationalError):
        billing_run(as_of=date(2026, 1, 1), chunk_size=3)
    assert Invoice.objects.count() == 3  # the first chunk committed, the second rolled back whole
    assert BillingRun.objects.get().status == "failed"
    monkeypatch.setattr(billing._ChunkBuilder, "insert", original)
    run = billing_run(as_of=date(2026, 1, 1), chunk_size=3)
    assert run.invoices_created == 3 and Invoice.objects.count() == len(subs)


def test_lock_keeps_a_subscription_whose_plan_changed_while_waiting():
    """The billing run's lock waits for a concurrent plan change and still returns the row (a FOR UPDATE
    joined to plan_version would silently drop it after the change commits)."""
    from django.db import transaction

    from subscriptions.locks import subscriptions_lock

    (sub,) = _subscriptions(1)
    other = PlanVersionFactory(amount=Decimal("20"), plan__currency="USD")
    changed, locked = threading.Event(), []

    def change_plan():
        with transaction.atomic():
            Subscription.objects.select_for_update().filter(pk=sub.pk).update(plan_version=other)
            changed.set()
            threading.Event().wait(0.5)  # hold the row while the billing lock queues behind it

    def bill():
        changed.wait(10)
        with transaction.atomic():
            locked.extend(subscriptions_lock([sub.pk]))

    errors = race(change_plan, bill, join_timeout=60).errors
    assert errors == []
    assert [(s.pk, s.plan_version_id) for s in locked] == [(sub.pk, other.pk)]
