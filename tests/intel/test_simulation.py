"""Pricing simulation: the self-check (re-rating with the billed plan reproduces the billed amounts
exactly) and a candidate plan, hand-computed; CSV; bad input."""

import csv
import io
from datetime import date

import pytest

from analytics.simulation import simulate
from subscriptions.models import Subscription

pytestmark = pytest.mark.django_db


def _calls(world, customer, day: date, n: int):
    world.events("calls", [f"{day.isoformat()}T{h % 24:02d}:{h // 24:02d}:00Z" for h in range(n)], customer=customer)


@pytest.fixture
def billed(world):
    world.metric("calls")
    world.plan("metered", amount="10.00", pay_in_advance=False, minimum_commitment="50.00",
               charges=[{"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "1.00"}}])
    for c in ("c1", "c2"):
        world.customer(c)
    world.subscription("s1", customer="c1", plan="metered", start_date=date(2026, 1, 15))
    world.subscription("s2", customer="c2", plan="metered", start_date=date(2026, 1, 1))
    _calls(world, "c1", date(2026, 1, 20), 10)
    _calls(world, "c1", date(2026, 2, 10), 60)
    _calls(world, "c1", date(2026, 3, 10), 20)
    _calls(world, "c2", date(2026, 2, 10), 100)
    world.run(date(2026, 4, 1))
    return world


# s1: Jan 15–31 (17/31 days): fee 5.48, usage 10.00, minimum 50 × 17/31 = 27.42 → true-up 11.94 → 27.42;
#     Feb 10.00 + 60.00 = 70.00; Mar 10.00 + 20.00 + true-up 20.00 = 50.00 → 147.42
# s2: Jan 10.00 + true-up 40.00; Feb 10.00 + 100.00; Mar 10.00 + true-up 40.00 → 210.00
def test_self_check_reproduces_billed_amounts(billed):
    ids = list(Subscription.objects.values_list("pk", flat=True))
    result = simulate(candidate=None, subscription_ids=ids, start=date(2026, 1, 1), end=date(2026, 4, 1))
    assert [(r["subscription"], r["actual"], r["simulated"], r["delta"]) for r in result["rows"]] == [
        ("s1", "147.42", "147.42", "0.00"), ("s2", "210.00", "210.00", "0.00")]
    assert (result["totals"]["actual"], result["totals"]["delta"]) == ("357.42", "0.00")


def test_candidate_plan_inline_and_by_code(billed, reader_api):
    body = {"plan": {"currency": "USD", "amount": "0", "charges": [
        {"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "0.80"}}]},
        "current_plan": "metered", "from": "2026-01-01", "to": "2026-04-01"}
    r = reader_api.post("/api/v1/simulations/", body, format="json")
    assert r.status_code == 200, r.content
    data = r.json()
    # s1: 90 calls × 0.80 = 72.00; s2: 100 × 0.80 = 80.00
    assert [(x["subscription"], x["actual"], x["simulated"], x["delta"]) for x in data["rows"]] == [
        ("s1", "147.42", "72.00", "-75.42"), ("s2", "210.00", "80.00", "-130.00")]
    assert data["totals"] | {} == {**data["totals"], "actual": "357.42", "simulated": "152.00", "delta": "-205.42"}

    same = reader_api.post("/api/v1/simulations/", {"plan": "metered", "subscriptions": ["s1"], "from": "2026-02-01",
                                                    "to": "2026-04-01"}, format="json").json()
    assert [(x["subscription"], x["actual"], x["simulated"]) for x in same["rows"]] == [("s1", "120.00", "120.00")]

    as_csv = reader_api.post("/api/v1/simulations/?format=csv", body, format="json")
    assert as_csv.status_code == 200 and as_csv["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.content.decode())))
    assert [(x["subscription"], x["simulated"]) for x in rows] == [("s1", "72.00"), ("s2", "80.00")]


def test_simulation_bad_input(billed, reader_api):
    def post(body):
        return reader_api.post("/api/v1/simulations/", body, format="json")

    base = {"plan": "metered", "current_plan": "metered", "from": "2026-01-01", "to": "2026-04-01"}
    for change, field in [({"plan": "nope"}, "plan"), ({"plan": None}, "plan"), ({"from": None}, "from"),
                          ({"to": "2026-13-01"}, "to"), ({"current_plan": None}, "subscriptions"),
                          ({"current_plan": None, "subscriptions": ["zz"]}, "subscriptions"),
                          ({"plan": {"currency": "USD", "charges": [{"billable_metric": "nope", "model": "standard",
                                                                     "properties": {"unit_amount": "1"}}]}},
                           "plan.charges[0].billable_metric"),
                          ({"from": "2026-04-01", "to": "2026-01-01"}, "from")]:
        r = post({**base, **change})
        assert r.status_code == 400 and field in r.json()["error"]["fields"], (change, r.content)


def test_candidate_with_base_fee_tiers_and_a_prorated_minimum_by_hand(billed):
    from analytics.simulation import candidate_from_definition

    candidate = candidate_from_definition({"currency": "USD", "amount": "20.00", "minimum_commitment": "40.00",
                                           "charges": [{"billable_metric": "calls", "model": "graduated",
                                                        "properties": {"tiers": [{"up_to": 50, "unit_amount": "0"},
                                                                                 {"up_to": None, "unit_amount": "0.50"}]}}]})
    ids = list(Subscription.objects.values_list("pk", flat=True))
    result = simulate(candidate=candidate, subscription_ids=ids, start=date(2026, 1, 1), end=date(2026, 4, 1))
    # s1, Jan 15–31 (17 of 31 days): fee 20 × 17/31 = 10.97, 10 calls free, minimum 40 × 17/31 = 21.94 → true-up
    #   10.97 → 21.94; Feb: 20.00 + (60 − 50) × 0.50 = 25.00 → true-up 15.00 → 40.00; Mar: 20.00 + 0 → 40.00
    #   → 101.94
    # s2: Jan 20.00 → 40.00; Feb 20.00 + 50 × 0.50 = 45.00 (over the minimum); Mar → 40.00 → 125.00
    assert [(r["subscription"], r["actual"], r["simulated"], r["delta"]) for r in result["rows"]] == [
        ("s1", "147.42", "101.94", "-45.48"), ("s2", "210.00", "125.00", "-85.00")]
    assert (result["totals"]["simulated"], result["totals"]["delta"]) == ("226.94", "-130.48")
