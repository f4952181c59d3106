"""Taxes: the pure per-rate engine (hand-computed) and which rates/notes a customer gets."""

import datetime
from dataclasses import dataclass
from decimal import Decimal as D

import pytest

from catalog.models import TaxRate
from catalog.selectors import tax_determination_for_customer, tax_rates_for_customer
from catalog.services import tax_rate_create, tax_rate_update
from catalog.taxes import EXEMPT_NOTE, REVERSE_CHARGE_NOTE, TaxError, compute_tax, reverse_charge_applies
from common.errors import ApplicationError
from common.models import AuditEvent
from tests.customers.factories import CustomerFactory

ON = datetime.date(2026, 3, 1)


@dataclass
class Rate:
    name: str
    rate: D
    id: int | None = None


# --- pure engine ---------------------------------------------------------------------------------

def test_single_rate_rounds_half_up():
    # 134.99 × 8.25% = 11.136675 → 11.14
    result = compute_tax(taxable_amount=D("134.99"), rates=[Rate("Sales tax", D("8.25"), 7)], currency="USD")
    [line] = result.lines
    assert (line.tax_rate_id, line.name, line.rate, line.taxable_amount, line.amount) == (
        7, "Sales tax", D("8.25"), D("134.99"), D("11.14"))
    assert result.total == D("11.14") and result.note == ""


def test_state_and_county_rates_are_rounded_separately():
    # 10.30 × 5% = 0.515 → 0.52; 10.30 × 2.5% = 0.2575 → 0.26; total 0.78
    # (one combined 7.5% rate would give 0.7725 → 0.77: per-rate rounding is the rule)
    result = compute_tax(taxable_amount=D("10.30"), currency="USD",
                         rates=[Rate("CA state", D("5")), Rate("Alameda county", D("2.5"))])
    assert [line.amount for line in result.lines] == [D("0.52"), D("0.26")]
    assert result.total == D("0.78")
    assert compute_tax(taxable_amount=D("10.30"), currency="USD", rates=[Rate("combined", D("7.5"))]).total == D("0.77")


def test_jpy_tax_has_no_decimals():
    # 2975 × 10% = 297.5 → 298
    result = compute_tax(taxable_amount=D("2975"), rates=[Rate("JCT", D("10"))], currency="JPY")
    assert result.total == D("298") and result.total.as_tuple().exponent == 0


def test_kwd_tax_has_three_decimals():
    # 12.458 × 5% = 0.6229 → 0.623
    result = compute_tax(taxable_amount=D("12.458"), rates=[Rate("VAT", D("5"))], currency="KWD")
    assert result.total == D("0.623") and result.total.as_tuple().exponent == -3


def test_four_decimal_rate():
    # 100.00 × 7.1234% = 7.1234 → 7.12
    assert compute_tax(taxable_amount=D("100.00"), rates=[Rate("x", D("7.1234"))], currency="USD").total == D("7.12")


def test_no_rates_no_tax_and_note_kept():
    result = compute_tax(taxable_amount=D("100.00"), rates=[], currency="EUR", note=REVERSE_CHARGE_NOTE)
    assert result.lines == () and result.total == D("0.00") and result.note == REVERSE_CHARGE_NOTE


def test_negative_taxable_gives_negative_tax_symmetrically():
    # −30.00 × 8.25% = −2.475 → −2.48 (half up = away from zero)
    result = compute_tax(taxable_amount=D("-30.00"), rates=[Rate("t", D("8.25"))], currency="USD")
    assert result.total == D("-2.48")


def test_engine_rejects_floats_and_bad_rates():
    with pytest.raises(TaxError):
        compute_tax(taxable_amount=100.0, rates=[], currency="USD")
    with pytest.raises(TaxError):
        compute_tax(taxable_amount=D("1"), rates=[Rate("x", 8.25)], currency="USD")
    with pytest.raises(TaxError):
        compute_tax(taxable_amount=D("1"), rates=[Rate("x", D("101"))], currency="USD")


@pytest.mark.parametrize("country,tax_id,seller,expected", [
    ("DE", "DE123456789", "US", True),
    ("FR", "FR12345678901", "DE", True),
    ("DE", "DE123456789", "DE", False),  # domestic: normal VAT
    ("DE", "", "US", False),  # B2C: normal VAT
    ("DE", "  ", "US", False),
    ("GB", "GB123", "US", False),  # not in the EU
    ("US", "12-345", "US", False),
])
def test_reverse_charge_rule(country, tax_id, seller, expected):
    assert reverse_charge_applies(customer_country=country, customer_tax_id=tax_id, seller_country=seller) is expected


# --- rates for a customer ------------------------------------------------------------------------

@pytest.fixture
def rates(db):
    return {
        "us_ca_state": tax_rate_create(name="CA state", country="US", region="CA", rate="6.25"),
        "us_ca_county": tax_rate_create(name="CA county", country="US", region="CA", rate="2"),
        "us_ny": tax_rate_create(name="NY state", country="US", region="NY", rate="4"),
        "us": tax_rate_create(name="US federal-ish", country="US", rate="1"),
        "de": tax_rate_create(name="DE VAT", country="DE", rate="19"),
        "de_old": tax_rate_create(name="DE VAT 2020", country="DE", rate="16", valid_from=datetime.date(2020, 7, 1),
                                  valid_to=datetime.date(2021, 1, 1)),
        "fr_inactive": tax_rate_create(name="FR old", country="FR", rate="19.6", active=False),
        "fr": tax_rate_create(name="FR TVA", country="FR", rate="20"),
    }


def names(found):
    return [r.name for r in found]


def test_region_rates_beat_country_rates(rates):
    customer = CustomerFactory(country="US", region="CA")
    assert names(tax_rates_for_customer(customer=customer, on=ON)) == ["CA county", "CA state"]


def test_region_match_is_case_insensitive(rates):
    assert names(tax_rates_for_customer(customer=CustomerFactory(country="US", region="ny"), on=ON)) == ["NY state"]


def test_country_rates_when_region_has_none(rates):
    assert names(tax_rates_for_customer(customer=CustomerFactory(country="US", region="TX"), on=ON)) == ["US federal-ish"]
    assert names(tax_rates_for_customer(customer=CustomerFactory(country="US", region=""), on=ON)) == ["US federal-ish"]


def test_validity_window_is_half_open_and_inactive_rates_skipped(rates):
    de = CustomerFactory(country="DE", currency="EUR")
    assert names(tax_rates_for_customer(customer=de, on=ON)) == ["DE VAT"]
    assert names(tax_rates_for_customer(customer=de, on=datetime.date(2020, 7, 1))) == ["DE VAT", "DE VAT 2020"]
    assert names(tax_rates_for_customer(customer=de, on=datetime.date(2021, 1, 1))) == ["DE VAT"]
    assert names(tax_rates_for_customer(customer=CustomerFactory(country="FR", currency="EUR"), on=ON)) == ["FR TVA"]
    tax_rate_update(tax_rate=rates["fr"], valid_to=ON)
    assert tax_rates_for_customer(customer=CustomerFactory(country="FR", currency="EUR"), on=ON) == []


def test_no_country_or_no_rate_means_no_tax(rates):
    assert tax_determination_for_customer(customer=CustomerFactory(country=""), on=ON).reason == "no_rate"
    assert tax_rates_for_customer(customer=CustomerFactory(country="JP", currency="JPY"), on=ON) == []


def test_tax_exempt_customer_gets_no_rates_and_a_note(rates):
    customer = CustomerFactory(country="US", region="CA", tax_exempt=True)
    found = tax_determination_for_customer(customer=customer, on=ON)
    assert (found.rates, found.note, found.reason) == ((), EXEMPT_NOTE, "exempt")
    assert tax_rates_for_customer(customer=customer, on=ON) == []
    result = compute_tax(taxable_amount=D("100.00"), rates=found.rates, currency="USD", note=found.note)
    assert (result.total, result.note) == (D("0.00"), EXEMPT_NOTE)


def test_reverse_charge_b2b_eu_customer(rates):
    # Default seller country is US (settings.SELLER has no "country"): a German business with a VAT id.
    customer = CustomerFactory(country="DE", currency="EUR", tax_id="DE123456789")
    found = tax_determination_for_customer(customer=customer, on=ON)
    assert (found.rates, found.note, found.reason) == ((), REVERSE_CHARGE_NOTE, "reverse_charge")
    assert REVERSE_CHARGE_NOTE == "VAT reverse charge: the customer accounts for VAT (Art. 196 Directive 2006/112/EC)"
    # The same business without a VAT id (B2C) pays German VAT.
    b2c = CustomerFactory(country="DE", currency="EUR")
    assert names(tax_determination_for_customer(customer=b2c, on=ON).rates) == ["DE VAT"]


def test_domestic_b2b_pays_vat_when_seller_is_in_the_same_country(rates, settings):
    settings.SELLER = {**settings.SELLER, "country": "DE"}
    domestic = CustomerFactory(country="DE", currency="EUR", tax_id="DE123456789")
    assert names(tax_rates_for_customer(customer=domestic, on=ON)) == ["DE VAT"]
    french = CustomerFactory(country="FR", currency="EUR", tax_id="FR12345678901")
    assert tax_determination_for_customer(customer=french, on=ON).reason == "reverse_charge"


# --- services ------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_tax_rate_create_normalizes_and_audits():
    rate = tax_rate_create(name="Sales", country="us", region=" CA ", rate="8.25", actor="tester")
    rate.refresh_from_db()
    assert (rate.country, rate.region, rate.rate, rate.active) == ("US", "CA", D("8.2500"), True)
    assert AuditEvent.objects.filter(action="tax_rate.created", object_id=str(rate.pk)).exists()
    assert rate.history.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("kwargs,field", [
    ({"rate": "100.5"}, "rate"),
    ({"rate": "-1"}, "rate"),
    ({"rate": "8.12345"}, "rate"),
    ({"rate": "abc"}, "rate"),
    ({"country": "XX"}, "country"),
    ({"name": ""}, "name"),
    ({"valid_from": datetime.date(2026, 2, 1), "valid_to": datetime.date(2026, 2, 1)}, "valid_to"),
])
def test_tax_rate_create_rejects_bad_input(kwargs, field):
    with pytest.raises(ApplicationError) as exc:
        tax_rate_create(**({"name": "T", "country": "US", "rate": "5"} | kwargs))
    assert exc.value.status_code == 400 and field in exc.value.fields
    assert not TaxRate.objects.exists()


@pytest.mark.django_db
def test_tax_rate_update_changes_only_name_active_and_end():
    rate = tax_rate_create(name="T", country="US", rate="5", valid_from=datetime.date(2026, 1, 1))
    tax_rate_update(tax_rate=rate, name="Tax", active=False, valid_to=datetime.date(2026, 6, 1))
    rate.refresh_from_db()
    assert (rate.name, rate.active, rate.valid_to, rate.rate) == ("Tax", False, datetime.date(2026, 6, 1), D("5"))
    with pytest.raises(ApplicationError):
        tax_rate_update(tax_rate=rate, valid_to=datetime.date(2025, 12, 31))
