"""The schedule engine: cumulative rounding by day, discount allocation, shrinking (hypothesis)."""

from datetime import date, timedelta
from decimal import Decimal as D

from hypothesis import given, settings, strategies as st

from revrec.schedules import allocate_discount, cumulative_split, months_between, ratable_schedule, shrink


def test_100_over_jan_to_mar_2025():
    # 90 days: 31/90 × 100 = 34.444 → 34.44; 59/90 × 100 = 65.556 → 65.56 (31.12); 90/90 → 100 (34.44).
    assert ratable_schedule(D("100.00"), date(2025, 1, 1), date(2025, 4, 1), "USD") == [
        (date(2025, 1, 1), D("34.44")), (date(2025, 2, 1), D("31.12")), (date(2025, 3, 1), D("34.44"))]


def test_yearly_fee_gives_twelve_entries_summing_exactly():
    schedule = ratable_schedule(D("1000.00"), date(2025, 1, 1), date(2026, 1, 1), "USD")
    assert [m for m, _ in schedule] == [date(2025, m, 1) for m in range(1, 13)]
    # Jan: 31/365 × 1000 = 84.93; Feb: 59/365 → 161.64 − 84.93 = 76.71
    assert schedule[0][1] == D("84.93") and schedule[1][1] == D("76.71")
    assert sum(a for _, a in schedule) == D("1000.00")


def test_mid_month_period_splits_by_days():
    # 15 Jan – 15 Feb: 17 days in January, 14 in February, of 31. 31.00 → 17.00 / 14.00.
    assert months_between(date(2025, 1, 15), date(2025, 2, 15)) == [(date(2025, 1, 1), 17), (date(2025, 2, 1), 14)]
    assert [a for _, a in ratable_schedule(D("31.00"), date(2025, 1, 15), date(2025, 2, 15), "USD")] == [D("17.00"), D("14.00")]


def test_zero_decimal_currency():
    assert [a for _, a in ratable_schedule(D("100"), date(2025, 1, 1), date(2025, 4, 1), "JPY")] == [D("34"), D("32"), D("34")]


def test_discount_in_proportion_to_lines():
    # 10.00 over 33.33 / 66.67 / credit −5.00: 3.333 → 3.33, then 10.00 − 3.33 = 6.67; credit lines get none.
    assert allocate_discount(D("10.00"), [D("33.33"), D("66.67"), D("-5.00")], "USD") == [D("3.33"), D("6.67"), D("0.00")]


def test_shrink_keeps_proportions_and_the_total():
    assert shrink([D("100.00")] * 3, D("50.00"), "USD") == [D("83.33"), D("83.34"), D("83.33")]


money = st.decimals(min_value=D("-100000"), max_value=D("1000000"), places=2)
day = st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31))


@settings(max_examples=300, deadline=None)
@given(amount=money, start=day, days=st.integers(min_value=1, max_value=800),
       currency=st.sampled_from(["USD", "JPY", "KWD"]))
def test_a_schedule_always_sums_to_its_line(amount, start, days, currency):
    from common.money import quantize_money

    amount = quantize_money(amount, currency)
    schedule = ratable_schedule(amount, start, start + timedelta(days=days), currency)
    assert sum((a for _, a in schedule), D(0)) == amount
    assert all(quantize_money(a, currency) == a for _, a in schedule)
    # cumulative rounding: every partial sum is within half a minor unit of the exact figure
    months = months_between(start, start + timedelta(days=days))
    running, served = D(0), 0
    for (_, a), (_, d) in zip(schedule, months):
        running += a
        served += d
        assert abs(running - amount * served / days) <= D(1).scaleb(-{"USD": 2, "JPY": 0, "KWD": 3}[currency]) / 2


@settings(max_examples=200, deadline=None)
@given(total=st.decimals(min_value=D("0"), max_value=D("100000"), places=2),
       weights=st.lists(st.decimals(min_value=D("0.01"), max_value=D("50000"), places=2), min_size=1, max_size=12))
def test_splits_sum_exactly(total, weights):
    assert sum(cumulative_split(total, weights, "USD"), D(0)) == total
    assert sum(allocate_discount(total, weights, "USD"), D(0)) == total
    reduction = min(total, sum(weights))
    assert sum(shrink(weights, reduction, "USD"), D(0)) == sum(weights) - reduction
