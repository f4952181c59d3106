"""Hand-computed amounts for every charge model (DESIGN.md §3) and hypothesis properties."""

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.rating import RatingError, minimum_commitment_true_up, needs_event_values, rate

DESIGN_TIERS = {"tiers": [{"up_to": 50, "unit_amount": "40", "flat_amount": "0"},
                          {"up_to": None, "unit_amount": "35", "flat_amount": "0"}]}
THREE_TIERS = {"tiers": [{"up_to": 100, "unit_amount": "1.00", "flat_amount": "10"},
                         {"up_to": 1000, "unit_amount": "0.50", "flat_amount": "5"},
                         {"up_to": None, "unit_amount": "0.10", "flat_amount": "0"}]}


def amount(model, properties, q, currency="USD", **kw):
    return rate(model=model, properties=properties, quantity=D(q), currency=currency, **kw).amount


# --- standard ----------------------------------------------------------------------------------

def test_standard_design_example_and_minimum_true_up():
    big = rate(model="standard", properties={"unit_amount": "0.004"}, quantity=D(180000), currency="USD")
    assert big.amount == D("720.00") and str(big.amount) == "720.00"
    assert big.unit_amount == D("0.004")
    assert big.description == "180000 × 0.004"
    assert minimum_commitment_true_up(minimum=D(200), subtotal=big.amount, currency="USD") == D("0.00")

    small = rate(model="standard", properties={"unit_amount": "0.004"}, quantity=D(40000), currency="USD")
    assert small.amount == D("160.00")
    true_up = minimum_commitment_true_up(minimum=D(200), subtotal=small.amount, currency="USD")
    assert true_up == D("40.00") and str(true_up) == "40.00"


def test_standard_rounds_half_up_once():
    # 0.000125 × 20 = 0.0025 → 0.00 ; × 60 = 0.0075 → 0.01 (half up, not banker's)
    assert amount("standard", {"unit_amount": "0.000125"}, 20) == D("0.00")
    assert amount("standard", {"unit_amount": "0.000125"}, 60) == D("0.01")
    assert amount("standard", {"unit_amount": "0.005"}, 1) == D("0.01")
    assert amount("standard", {"unit_amount": "0.015"}, 1) == D("0.02")


def test_standard_twelve_decimal_unit_price():
    assert amount("standard", {"unit_amount": "0.000000000001"}, 10**12) == D("1.00")


def test_standard_zero_usage_and_negative_quantity():
    assert amount("standard", {"unit_amount": "3"}, 0) == D("0.00")
    assert amount("standard", {"unit_amount": "3"}, -5) == D("0.00")


def test_standard_jpy_and_kwd():
    assert amount("standard", {"unit_amount": "0.5"}, 3, "JPY") == D("2")  # 1.5 → 2
    assert str(amount("standard", {"unit_amount": "12.345"}, 1, "JPY")) == "12"
    kwd = amount("standard", {"unit_amount": "0.0125"}, 3, "KWD")  # 0.0375 → 0.038
    assert kwd == D("0.038") and str(kwd) == "0.038"


# --- package -----------------------------------------------------------------------------------

PACKAGE = {"package_size": 1000, "amount": "5.00", "free_units": 0}


@pytest.mark.parametrize("q,expected", [(0, "0.00"), (1, "5.00"), (999, "5.00"), (1000, "5.00"), (1001, "10.00"),
                                        (2500, "15.00")])
def test_package(q, expected):
    assert amount("package", PACKAGE, q) == D(expected)


def test_package_free_units():
    props = {"package_size": 100, "amount": "2.50", "free_units": 150}
    assert amount("package", props, 150) == D("0.00")  # exactly the free allowance
    assert amount("package", props, 151) == D("2.50")
    assert amount("package", props, 350) == D("5.00")  # 200 billable = 2 packages
    assert amount("package", props, 351) == D("7.50")


def test_package_free_units_larger_than_usage():
    rated = rate(model="package", properties={"package_size": 10, "amount": "1", "free_units": 1000},
                 quantity=D(40), currency="USD")
    assert rated.amount == D("0.00")
    assert rated.unit_amount is None
    assert [t.as_dict() for t in rated.tiers] == [
        {"from": "0", "to": "1000", "units": "40", "unit_amount": "0", "flat_amount": "0", "amount": "0"}]


def test_package_breakdown_and_fractional_quantity():
    rated = rate(model="package", properties={"package_size": 1000, "amount": "5", "free_units": 100},
                 quantity=D("2100.5"), currency="EUR")
    assert rated.amount == D("15.00")  # 2000.5 billable → 3 packages
    assert [t.as_dict() for t in rated.tiers] == [
        {"from": "0", "to": "100", "units": "100", "unit_amount": "0", "flat_amount": "0", "amount": "0"},
        {"from": "100", "to": None, "units": "2000.5", "unit_amount": "0", "flat_amount": "15", "amount": "15"},
    ]
    assert rated.description == "3 × 5.00 (packages of 1000), 100 free"


def test_package_kwd():
    assert amount("package", {"package_size": 3, "amount": "0.125", "free_units": 0}, 7, "KWD") == D("0.375")


# --- graduated ---------------------------------------------------------------------------------

def test_graduated_design_example():
    rated = rate(model="graduated", properties=DESIGN_TIERS, quantity=D(60), currency="USD")
    assert rated.amount == D("2350.00")
    assert rated.unit_amount is None
    assert rated.description == "50 × 40.00 + 10 × 35.00"
    assert [t.as_dict() for t in rated.tiers] == [
        {"from": "0", "to": "50", "units": "50", "unit_amount": "40", "flat_amount": "0", "amount": "2000"},
        {"from": "50", "to": None, "units": "10", "unit_amount": "35", "flat_amount": "0", "amount": "350"},
    ]


@pytest.mark.parametrize("q,expected", [
    (0, "0.00"),
    (1, "11.00"),                                # 1×1 + 10 flat
    (100, "110.00"),                             # boundary: all in tier 1
    (101, "115.50"),                             # 100 + 10 + (1×0.5 + 5)
    (1000, "565.00"),                            # 110 + 900×0.5 + 5
    (1001, "565.10"),                            # + 1×0.10, tier 3 flat 0
    (5000, "965.00"),                            # 565 + 4000×0.10
])
def test_graduated_with_flat_fees_and_boundaries(q, expected):
    assert amount("graduated", THREE_TIERS, q) == D(expected)


def test_graduated_boundary_at_up_to_uses_only_first_tier():
    rated = rate(model="graduated", properties=DESIGN_TIERS, quantity=D(50), currency="USD")
    assert rated.amount == D("2000.00")
    assert len(rated.tiers) == 1
    assert rated.tiers[0].to_unit == D(50)


def test_graduated_zero_usage_has_no_flat_fee():
    rated = rate(model="graduated", properties=THREE_TIERS, quantity=D(0), currency="USD")
    assert rated.amount == D("0.00") and rated.tiers == ()


def test_graduated_kwd_rounds_the_sum_once():
    props = {"tiers": [{"up_to": 10, "unit_amount": "0.0004"}, {"up_to": None, "unit_amount": "0.0003"}]}
    # 10×0.0004 + 5×0.0003 = 0.0055 → 0.006 ; 10×0.0004 + 1×0.0003 = 0.0043 → 0.004
    assert amount("graduated", props, 15, "KWD") == D("0.006")
    assert amount("graduated", props, 11, "KWD") == D("0.004")


def test_graduated_jpy():
    assert amount("graduated", DESIGN_TIERS, 60, "JPY") == D("2350")


# --- volume ------------------------------------------------------------------------------------

def test_volume_design_example():
    rated = rate(model="volume", properties=DESIGN_TIERS, quantity=D(60), currency="USD")
    assert rated.amount == D("2100.00")
    assert rated.unit_amount == D("35")
    assert rated.description == "60 × 35.00"
    assert [t.as_dict() for t in rated.tiers] == [
        {"from": "50", "to": None, "units": "60", "unit_amount": "35", "flat_amount": "0", "amount": "2100"}]


@pytest.mark.parametrize("q,expected", [
    (0, "0.00"),
    (50, "2000.00"),   # boundary: q == up_to stays in tier 1
    (51, "1785.00"),   # 51 × 35
])
def test_volume_boundaries(q, expected):
    assert amount("volume", DESIGN_TIERS, q) == D(expected)


@pytest.mark.parametrize("q,expected", [(100, "110.00"), (101, "55.50"), (1000, "505.00"), (1001, "100.10")])
def test_volume_flat_fee(q, expected):
    assert amount("volume", THREE_TIERS, q) == D(expected)


def test_volume_kwd():
    assert amount("volume", {"tiers": [{"up_to": None, "unit_amount": "1.2345"}]}, 3, "KWD") == D("3.704")  # 3.7035


# --- percentage --------------------------------------------------------------------------------

def test_percentage_rate_and_fixed_fee():
    rated = rate(model="percentage", properties={"rate": "2.9", "fixed_amount": "0.30", "free_units": 0},
                 quantity=D("1000.00"), currency="USD", event_count=10)
    assert rated.amount == D("32.00")  # 29.00 + 3.00
    assert rated.unit_amount is None
    assert sum(t.amount for t in rated.tiers) == D("32.00")
    assert rated.description == "2.9% × 1000.00 + 10 × 0.30"


def test_percentage_rounds_half_up():
    assert amount("percentage", {"rate": "1.5"}, "0.30", event_count=0) == D("0.00")   # 0.0045
    assert amount("percentage", {"rate": "2.5"}, "0.30", event_count=0) == D("0.01")   # 0.0075


def test_percentage_free_events_are_the_first_by_timestamp():
    props = {"rate": "10", "fixed_amount": "1", "free_units": 2}
    assert needs_event_values(model="percentage", properties=props)
    rated = rate(model="percentage", properties=props, quantity=D(1110), currency="USD",
                 event_values=[D(1000), D(100), D(10)])
    assert rated.amount == D("2.00")  # only the 10 is billed: 1.00 + 1.00 fixed


def test_percentage_free_units_larger_than_usage():
    rated = rate(model="percentage", properties={"rate": "10", "fixed_amount": "1", "free_units": 5},
                 quantity=D(30), currency="USD", event_values=[D(10), D(20)])
    assert rated.amount == D("0.00")


def test_percentage_per_event_min_and_max():
    props = {"rate": "2.9", "fixed_amount": "0.30", "min_per_transaction": "0.50", "max_per_transaction": "5.00"}
    rated = rate(model="percentage", properties=props, quantity=D("1005"), currency="USD",
                 event_values=[D(5), D(1000)])
    # 5 → 0.145 + 0.30 = 0.445 → min 0.50 ; 1000 → 29.30 → max 5.00
    assert rated.amount == D("5.50")
    assert sum(t.amount for t in rated.tiers) == D("5.50")


def test_percentage_without_event_values_when_needed_raises():
    with pytest.raises(RatingError):
        rate(model="percentage", properties={"rate": "1", "free_units": 3}, quantity=D(10), currency="USD", event_count=5)


def test_percentage_kwd_and_jpy():
    assert amount("percentage", {"rate": "0.25"}, "10.002", "KWD") == D("0.025")  # 0.025005
    assert amount("percentage", {"rate": "3.6", "fixed_amount": "40"}, 12345, "JPY", event_count=2) == D("524")  # 444.42+80


def test_needs_event_values():
    assert not needs_event_values(model="percentage", properties={"rate": "1", "free_units": 0})
    assert needs_event_values(model="percentage", properties={"rate": "1", "max_per_transaction": "2"})
    assert not needs_event_values(model="standard", properties={"unit_amount": "1"})


def test_minimum_commitment_true_up_cases():
    assert minimum_commitment_true_up(minimum=None, subtotal=D("5"), currency="USD") == D("0.00")
    assert minimum_commitment_true_up(minimum=D("100"), subtotal=D("100.00"), currency="USD") == D("0.00")
    assert minimum_commitment_true_up(minimum=D("1000"), subtotal=D("999.9995"), currency="KWD") == D("0.001")
    assert str(minimum_commitment_true_up(minimum=D("5000"), subtotal=D("1200"), currency="JPY")) == "3800"


def test_unknown_model_raises():
    with pytest.raises(RatingError):
        rate(model="bespoke", properties={}, quantity=D(1), currency="USD")


# --- hypothesis properties ---------------------------------------------------------------------

prices = st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False, allow_infinity=False)
quantities = st.decimals(min_value=0, max_value=100000, places=3, allow_nan=False, allow_infinity=False)
currencies = st.sampled_from(["USD", "JPY", "KWD"])


@st.composite
def tier_sets(draw):
    bounds = sorted(draw(st.sets(st.integers(min_value=1, max_value=5000), min_size=0, max_size=4)))
    tiers = [{"up_to": b, "unit_amount": str(draw(prices)), "flat_amount": str(draw(prices))} for b in bounds]
    tiers.append({"up_to": None, "unit_amount": str(draw(prices)), "flat_amount": str(draw(prices))})
    return {"tiers": tiers}


def _sums(rated, currency):
    from common.money import quantize_money

    unrounded = sum((t.amount for t in rated.tiers), D(0))
    return quantize_money(unrounded, currency) == rated.amount


@settings(max_examples=200, deadline=None)
@given(tiers=tier_sets(), q=quantities, currency=currencies, model=st.sampled_from(["graduated", "volume"]))
def test_tier_breakdown_sums_to_the_charge(tiers, q, currency, model):
    rated = rate(model=model, properties=tiers, quantity=q, currency=currency)
    assert _sums(rated, currency)
    if model == "graduated":
        assert sum((t.units for t in rated.tiers), D(0)) == q


@settings(max_examples=100, deadline=None)
@given(unit=prices, size=st.integers(1, 500), free=st.integers(0, 500), rate_pct=st.decimals(0, 100, places=3),
       fixed=prices, values=st.lists(st.decimals(0, 10000, places=2), max_size=8), q=quantities, currency=currencies)
def test_breakdown_sums_for_other_models(unit, size, free, rate_pct, fixed, values, q, currency):
    assert _sums(rate(model="standard", properties={"unit_amount": str(unit)}, quantity=q, currency=currency), currency)
    assert _sums(rate(model="package", properties={"package_size": size, "amount": str(unit), "free_units": free},
                      quantity=q, currency=currency), currency)
    props = {"rate": str(rate_pct), "fixed_amount": str(fixed), "free_units": free % 4, "min_per_transaction": "0.5"}
    assert _sums(rate(model="percentage", properties=props, quantity=sum(values, D(0)), currency=currency,
                      event_values=values), currency)


@settings(max_examples=200, deadline=None)
@given(tiers=tier_sets(), data=st.data(), currency=currencies)
def test_graduated_and_volume_agree_inside_the_first_tier(tiers, data, currency):
    first = tiers["tiers"][0]["up_to"] or 100000
    q = data.draw(st.decimals(min_value=0, max_value=first, places=3))
    graduated = rate(model="graduated", properties=tiers, quantity=q, currency=currency)
    volume = rate(model="volume", properties=tiers, quantity=q, currency=currency)
    assert graduated.amount == volume.amount


@settings(max_examples=200, deadline=None)
@given(tiers=tier_sets(), unit=prices, size=st.integers(1, 500), free=st.integers(0, 500), a=quantities,
       b=quantities, currency=currencies)
def test_amounts_are_monotonic_in_quantity(tiers, unit, size, free, a, b, currency):
    low, high = min(a, b), max(a, b)
    cases = [("standard", {"unit_amount": str(unit)}), ("graduated", tiers),
             ("package", {"package_size": size, "amount": str(unit), "free_units": free})]
    for model, props in cases:
        assert (rate(model=model, properties=props, quantity=low, currency=currency).amount
                <= rate(model=model, properties=props, quantity=high, currency=currency).amount), model
