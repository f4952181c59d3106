"""Invoice totals: lines → coupons → tax → credit balance → prepaid credits, hand-computed,
plus hypothesis properties of the whole pipeline."""

from dataclasses import dataclass
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.taxes import REVERSE_CHARGE_NOTE
from invoicing.totals import TotalsError, compute_invoice_totals
from common.money import quantize_money


@dataclass
class Rate:
    name: str
    rate: D
    id: int | None = None


@dataclass
class Coupon:
    code: str
    kind: str
    amount_off: D | None = None
    percent_off: D | None = None
    currency: str = ""
    name: str = ""
    id: int | None = None


def test_usd_full_pipeline_hand_computed():
    # lines 100.00 + 49.99 = 149.99; 10% coupon: 14.999 → 15.00; taxable 134.99;
    # 8.25%: 11.136675 → 11.14; total 146.13; credit balance 20.00 → 126.13; prepaid 30.00 → 96.13
    totals = compute_invoice_totals(
        line_amounts=[D("100.00"), D("49.99")], currency="USD",
        coupons=[Coupon(code="TEN", kind="percent", percent_off=D("10"), id=1)],
        tax_rates=[Rate("Sales tax", D("8.25"), 2)], credit_balance=D("20.00"), prepaid_available=D("30.00"))
    assert totals.subtotal == D("149.99")
    assert [(d.coupon_id, d.amount) for d in totals.discounts] == [(1, D("15.00"))]
    assert totals.discount == D("15.00")
    assert totals.taxable == D("134.99")
    assert [(t.tax_rate_id, t.amount) for t in totals.tax.lines] == [(2, D("11.14"))]
    assert totals.tax.total == D("11.14")
    assert totals.total == D("146.13")
    assert totals.credit_balance_applied == D("20.00")
    assert totals.prepaid_applied == D("30.00")
    assert totals.amount_due == D("96.13")
    assert totals.balance_credit == D("0.00")


def test_state_and_county_rates_on_an_invoice():
    # 10.30 taxable; state 5% = 0.515 → 0.52; county 2.5% = 0.2575 → 0.26; total 10.30 + 0.78 = 11.08
    totals = compute_invoice_totals(line_amounts=[D("10.30")], currency="USD",
                                    tax_rates=[Rate("state", D("5")), Rate("county", D("2.5"))])
    assert [t.amount for t in totals.tax.lines] == [D("0.52"), D("0.26")]
    assert (totals.tax.total, totals.total, totals.amount_due) == (D("0.78"), D("11.08"), D("11.08"))


def test_jpy_invoice():
    # 1000 + 2500 = 3500; 15% → 525; taxable 2975; 10% → 297.5 → 298; total 3273;
    # balance 500 → 2773; prepaid 1000 → 1773
    totals = compute_invoice_totals(line_amounts=[D("1000"), D("2500")], currency="JPY",
                                    coupons=[Coupon(code="J", kind="percent", percent_off=D("15"))],
                                    tax_rates=[Rate("JCT", D("10"))], credit_balance=D("500"),
                                    prepaid_available=D("1000"))
    assert (totals.subtotal, totals.discount, totals.taxable, totals.tax.total, totals.total) == (
        D("3500"), D("525"), D("2975"), D("298"), D("3273"))
    assert (totals.credit_balance_applied, totals.prepaid_applied, totals.amount_due) == (D("500"), D("1000"), D("1773"))


def test_kwd_invoice():
    # 10.125 + 3.333 = 13.458; fixed 1.000 KWD → taxable 12.458; 5% = 0.6229 → 0.623; total 13.081
    totals = compute_invoice_totals(line_amounts=[D("10.125"), D("3.333")], currency="KWD",
                                    coupons=[Coupon(code="K", kind="fixed", amount_off=D("1.000"), currency="KWD")],
                                    tax_rates=[Rate("VAT", D("5"))], prepaid_available=D("0.081"))
    assert (totals.subtotal, totals.discount, totals.taxable, totals.tax.total, totals.total) == (
        D("13.458"), D("1.000"), D("12.458"), D("0.623"), D("13.081"))
    assert (totals.prepaid_applied, totals.amount_due) == (D("0.081"), D("13.000"))


def test_fixed_coupon_larger_than_subtotal_floors_at_zero():
    totals = compute_invoice_totals(line_amounts=[D("30.00")], currency="USD",
                                    coupons=[Coupon(code="F", kind="fixed", amount_off=D("50.00"), currency="USD")],
                                    tax_rates=[Rate("t", D("8.25"))], credit_balance=D("10.00"),
                                    prepaid_available=D("10.00"))
    assert (totals.discount, totals.taxable, totals.tax.total, totals.total) == (D("30.00"), D("0.00"), D("0.00"),
                                                                                D("0.00"))
    assert (totals.credit_balance_applied, totals.prepaid_applied, totals.amount_due) == (D("0.00"), D("0.00"),
                                                                                          D("0.00"))


def test_reverse_charge_invoice_has_no_tax_and_the_note():
    totals = compute_invoice_totals(line_amounts=[D("500.00")], currency="EUR", tax_rates=[],
                                    tax_note=REVERSE_CHARGE_NOTE)
    assert (totals.tax.total, totals.total, totals.tax.note) == (D("0.00"), D("500.00"), REVERSE_CHARGE_NOTE)


def test_net_credit_invoice_becomes_a_balance_credit():
    # 50.00 charge − 80.00 proration credit = −30.00; no coupon on a negative subtotal; tax 8.25% of
    # −30.00 = −2.475 → −2.48; total −32.48; no credit used; amount due 0; 32.48 credited to the balance
    totals = compute_invoice_totals(line_amounts=[D("50.00"), D("-80.00")], currency="USD",
                                    coupons=[Coupon(code="TEN", kind="percent", percent_off=D("10"))],
                                    tax_rates=[Rate("t", D("8.25"))], credit_balance=D("20.00"),
                                    prepaid_available=D("5.00"))
    assert (totals.subtotal, totals.discount, totals.taxable, totals.tax.total, totals.total) == (
        D("-30.00"), D("0.00"), D("-30.00"), D("-2.48"), D("-32.48"))
    assert (totals.credit_balance_applied, totals.prepaid_applied, totals.amount_due) == (D("0.00"), D("0.00"),
                                                                                          D("0.00"))
    assert totals.balance_credit == D("32.48")


def test_credit_lines_count_in_the_subtotal():
    # 100.00 − 20.00 credit = 80.00; 25% → 20.00; taxable 60.00; 10% → 6.00; total 66.00
    totals = compute_invoice_totals(line_amounts=[D("100.00"), D("-20.00")], currency="USD",
                                    coupons=[Coupon(code="Q", kind="percent", percent_off=D("25"))],
                                    tax_rates=[Rate("t", D("10"))])
    assert (totals.subtotal, totals.discount, totals.taxable, totals.tax.total, totals.total) == (
        D("80.00"), D("20.00"), D("60.00"), D("6.00"), D("66.00"))


def test_unrounded_lines_are_refused():
    with pytest.raises(TotalsError):
        compute_invoice_totals(line_amounts=[D("1.005")], currency="USD")
    with pytest.raises(TotalsError):
        compute_invoice_totals(line_amounts=[D("1.5")], currency="JPY")
    with pytest.raises(TotalsError):
        compute_invoice_totals(line_amounts=[1.5], currency="USD")


# --- properties ----------------------------------------------------------------------------------

CURRENCIES = {"USD": 2, "JPY": 0, "KWD": 3}


@st.composite
def invoices(draw):
    currency = draw(st.sampled_from(sorted(CURRENCIES)))
    places = CURRENCIES[currency]
    money = st.decimals(min_value=D("-5000"), max_value=D("50000"), places=places, allow_nan=False,
                        allow_infinity=False)
    positive = st.decimals(min_value=D("0"), max_value=D("5000"), places=places, allow_nan=False,
                           allow_infinity=False)
    lines = draw(st.lists(money, max_size=8))
    coupons = draw(st.lists(st.one_of(
        st.builds(lambda p: Coupon(code="P", kind="percent", percent_off=p),
                  st.decimals(min_value=D("0.0001"), max_value=D("100"), places=4)),
        st.builds(lambda a: Coupon(code="F", kind="fixed", amount_off=a, currency=currency),
                  st.decimals(min_value=D(1).scaleb(-places), max_value=D("5000"),
                              places=places)),
    ), max_size=3))
    rates = draw(st.lists(st.builds(lambda r: Rate("r", r), st.decimals(min_value=D("0"), max_value=D("30"), places=4)),
                          max_size=3))
    return dict(line_amounts=lines, currency=currency, coupons=coupons, tax_rates=rates,
                credit_balance=draw(positive), prepaid_available=draw(positive))


@settings(max_examples=400, deadline=None)
@given(invoices())
def test_totals_properties(invoice):
    totals = compute_invoice_totals(**invoice)
    currency = invoice["currency"]
    assert totals.amount_due >= 0
    assert D(0) <= totals.discount <= max(totals.subtotal, D(0))
    assert totals.discount == sum((d.amount for d in totals.discounts), D(0))
    assert all(d.amount >= 0 for d in totals.discounts)
    assert totals.taxable == totals.subtotal - totals.discount
    assert totals.total == totals.taxable + totals.tax.total
    assert totals.tax.total == sum((t.amount for t in totals.tax.lines), D(0))
    assert totals.credit_balance_applied <= invoice["credit_balance"]
    assert totals.prepaid_applied <= invoice["prepaid_available"]
    assert totals.credit_balance_applied + totals.prepaid_applied + totals.amount_due == max(totals.total, D(0))
    assert totals.balance_credit == max(-totals.total, D(0))
    for value in (totals.subtotal, totals.discount, totals.taxable, totals.tax.total, totals.total,
                  totals.credit_balance_applied, totals.prepaid_applied, totals.amount_due):
        assert quantize_money(value, currency) == value
