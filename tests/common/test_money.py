from decimal import Decimal

import pytest

from common.money import (currency_exponent, format_money, from_minor_units, is_valid_currency, parse_decimal,
                          quantize_money, to_minor_units)


@pytest.mark.parametrize("currency,exponent", [("USD", 2), ("EUR", 2), ("JPY", 0), ("KWD", 3)])
def test_exponents(currency, exponent):
    assert currency_exponent(currency) == exponent


@pytest.mark.parametrize(
    "amount,currency,expected",
    [("2.345", "USD", "2.35"), ("2.344999", "USD", "2.34"), ("-2.345", "USD", "-2.35"), ("1234.5", "JPY", "1235"),
     ("0.0005", "KWD", "0.001"), ("0.0004", "KWD", "0.000"), ("720", "USD", "720.00")],
)
def test_quantize_half_up(amount, currency, expected):
    assert format_money(Decimal(amount), currency) == expected
    assert str(quantize_money(Decimal(amount), currency)) == expected


def test_quantize_rejects_float():
    with pytest.raises(TypeError):
        quantize_money(0.1, "USD")


def test_minor_units_round_trip():
    assert to_minor_units(Decimal("720.00"), "USD") == 72000
    assert to_minor_units(Decimal("1500"), "JPY") == 1500
    assert to_minor_units(Decimal("1.234"), "KWD") == 1234
    assert from_minor_units(72000, "USD") == Decimal("720.00")


def test_currency_validation():
    assert is_valid_currency("USD") and is_valid_currency("JPY")
    assert not is_valid_currency("usd") and not is_valid_currency("XAU") and not is_valid_currency("ABC")


@pytest.mark.parametrize("raw,expected", [(100.5, "100.5"), ("100.50", "100.50"), (3, "3"), (Decimal("0.1"), "0.1"),
                                          (" 7 ", "7"), ("1e3", "1E+3")])
def test_parse_decimal_exact(raw, expected):
    assert str(parse_decimal(raw)) == expected


@pytest.mark.parametrize("raw", ["abc", "", None, True, [1], {"a": 1}, "NaN", "Infinity", float("nan")])
def test_parse_decimal_rejects_non_numbers(raw):
    assert parse_decimal(raw) is None
