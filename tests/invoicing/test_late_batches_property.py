"""Property (issue 11, DESIGN.md §3–4): however a period's events are split into an on-time part
and k late batches, each billed on a later invoice, the period's total billed equals rating all of
its events at once, minimum commitment included — for all five aggregations and all charge models
(percentage with free events and per-event minimum/maximum fees included).

The expected amount is computed here, independently of the billing code: the aggregation in
Python over the generated events, then the pure rating engine, then max(minimum, base + usage)."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.rating import rate
from catalog.services import billable_metric_create, plan_create
from common.money import quantize_money
from customers.services import customer_create
from invoicing.billing import billing_run
from invoicing.models import InvoiceLine
from subscriptions.services import subscription_create
from usage.models import UsageEvent
from usage.partitioning import forget_known_partitions
from usage.services.ingest import event_ingest_batch

pytestmark = pytest.mark.django_db

AGGREGATIONS = ("count", "sum", "max", "unique_count", "latest")
TIERS = [{"up_to": 10, "unit_amount": "2", "flat_amount": "5"}, {"up_to": None, "unit_amount": "1", "flat_amount": "3"}]
CHARGES = {
    "standard": {"unit_amount": "1.5"},
    "package": {"package_size": "5", "amount": "10", "free_units": "2"},
    "graduated": {"tiers": TIERS},
    "volume": {"tiers": [{"up_to": 10, "unit_amount": "2", "flat_amount": "1"},
                         {"up_to": None, "unit_amount": "1.5", "flat_amount": "4"}]},
    "percentage": {"rate": "2.5", "fixed_amount": "0.30"},
    "percentage_free": {"rate": "2.5", "fixed_amount": "0.30", "free_units": "2"},
    "percentage_limits": {"rate": "10", "min_per_transaction": "0.50", "max_per_transaction": "3"},
    "percentage_all": {"rate": "7", "fixed_amount": "0.10", "free_units": "1", "min_per_transaction": "0.40",
                       "max_per_transaction": "2.5"},
}
# Percentage charges take a percentage of a sum metric (catalog validation); every other model runs
# on all five aggregations.
COMBOS = [(aggregation, charge) for aggregation in AGGREGATIONS for charge in sorted(CHARGES)
          if aggregation == "sum" or not charge.startswith("percentage")]
_counter = itertools.count()

events_strategy = st.lists(
    st.tuples(
        st.integers(1, 31),  # day of January
        st.sampled_from([Decimal(0), Decimal(3), Decimal("7.5"), Decimal(12), Decimal(40), Decimal("0.25")]),
        st.sampled_from(["u1", "u2", "u3", "u4"]),
        st.integers(0, 3),  # batch: 0 on time, 1..3 late
    ),
    max_size=12,
)


def _quantity(aggregation: str, events: list) -> Decimal:
    if not events:
        return Decimal(0)
    if aggregation == "count":
        return Decimal(len(events))
    if aggregation == "sum":
        return sum((e["value"] for e in events), Decimal(0))
    if aggregation == "max":
        return max(e["value"] for e in events)
    if aggregation == "unique_count":
        return Decimal(len({e["user"] for e in events}))
    return max(events, key=lambda e: e["ts"])["value"]  # latest (timestamps are distinct)


def _expected(aggregation, model, props, events, *, base, minimum) -> Decimal:
    ordered = sorted(events, key=lambda e: e["ts"])
    values = [Decimal(1) if aggregation == "count" else e["value"] for e in ordered]
    per_event = model == "percentage" and any(k in props for k in ("free_units", "min_per_transaction",
                                                                     "max_per_transaction"))
    usage = rate(model=model, properties=props, quantity=_quantity(aggregation, events), currency="USD",
                 event_count=len(events), event_values=values if per_event else None).amount
    total = base + usage
    return quantize_money(max(minimum, total) if minimum is not None else total, "USD")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(combo=st.sampled_from(COMBOS), raw=events_strategy,
       base=st.sampled_from([Decimal(0), Decimal(10)]), minimum=st.sampled_from([None, Decimal(25), Decimal(60)]))
def test_late_batches_bill_the_period_exactly_once(combo, raw, base, minimum):
    forget_known_partitions()
    aggregation, charge = combo
    n = next(_counter)
    model = charge.split("_")[0]
    props = CHARGES[charge]
    field = "" if aggregation == "count" else ("user" if aggregation == "unique_count" else "value")
    metric = billable_metric_create(code=f"m{n}", name=f"M{n}", aggregation=aggregation, field=field)
    plan_create(code=f"p{n}", name=f"P{n}", currency="USD", interval="month", amount=base, pay_in_advance=False,
                minimum_commitment=minimum, charges=[{"billable_metric": metric.code, "model": model,
                                                      "properties": props}])
    customer = customer_create(external_id=f"c{n}", name=f"C{n}", currency="USD", timezone="UTC")
    sub = subscription_create(external_id=f"s{n}", customer=customer, plan_code=f"p{n}",
                              start_date=date(2026, 1, 1), today=date(2026, 1, 1))
    events = []
    for i, (day, value, user, batch) in enumerate(raw):
        ts = datetime(2026, 1, day, 10, i, tzinfo=timezone.utc)  # distinct timestamps: `latest` is unambiguous
        events.append({"ts": ts, "value": value, "user": user, "batch": batch, "tid": f"e{n}-{i}"})
    batches = sorted({e["batch"] for e in events} | {0})

    for number, batch in enumerate(batches):
        body = [{"transaction_id": e["tid"], "subscription": sub.external_id, "code": metric.code,
                 "timestamp": e["ts"].isoformat(), "properties": {field: str(e["value"]) if field == "value" else e["user"]}
                 if field else {}} for e in events if e["batch"] == batch]
        if body:
            result = event_ingest_batch(events=body)
            assert not result.rejected, result.rejected
        # The on-time part closes with January; each late batch goes on the next month's invoice.
        run = billing_run(as_of=date(2026, 2 + number, 1), subscription_ids=[sub.pk])
        assert run.error_count == 0, run.errors
    if any(e["batch"] > 0 for e in events):
        assert UsageEvent.objects.filter(subscription=sub, is_late=True, late_billed_at__isnull=True).count() == 0

    billed = sum(InvoiceLine.objects.filter(invoice__subscription=sub, period_start__gte=date(2026, 1, 1),
                                            period_start__lt=date(2026, 2, 1)).values_list("amount", flat=True),
                 Decimal(0))
    assert billed == _expected(aggregation, model, props, events, base=base, minimum=minimum)
