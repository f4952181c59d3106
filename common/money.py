"""Money helpers: the one documented place where amounts are quantized.

Rule (DESIGN.md §2): round half up to the currency's ISO 4217 minor-unit exponent, once per
invoice line. Unit prices keep up to 12 decimal places. Never floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.languages import get_official_languages
from babel.numbers import format_currency, format_decimal, format_percent, get_currency_precision, list_currencies

from common.errors import ApplicationError

UNIT_PRICE_PLACES = 12
UNIT_PRICE_QUANTUM = Decimal(1).scaleb(-UNIT_PRICE_PLACES)
# Stored amount columns keep 4 places: enough for every ISO 4217 exponent (max 4, CLF/UYW).
AMOUNT_DECIMAL_PLACES = 4
AMOUNT_MAX_DIGITS = 20
UNIT_PRICE_MAX_DIGITS = 28

# --- column specs: every DecimalField (model or serializer) of these kinds uses one of them ---------
# Stored amounts, quantized to the currency's exponent.
MONEY_FIELD = dict(max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES)
# Unit prices (DESIGN.md §2: up to 12 decimal places).
PRICE_FIELD = dict(max_digits=UNIT_PRICE_MAX_DIGITS, decimal_places=UNIT_PRICE_PLACES)
# Quantities of usage (aggregates of event values).
QUANTITY_FIELD = dict(max_digits=38, decimal_places=12)
# Percentages (tax rates, percent-off coupons): "8.25" means 8.25 %.
PERCENT_FIELD = dict(max_digits=7, decimal_places=4)

# ISO 4217 codes that are funds or metals, not currencies anyone invoices in.
_NOT_INVOICEABLE = {"XAU", "XAG", "XPT", "XPD", "XDR", "XBA", "XBB", "XBC", "XBD", "XSU", "XUA", "XTS", "XXX"}


@lru_cache(maxsize=1)
def _currency_codes() -> frozenset[str]:
    return frozenset(c for c in list_currencies() if len(c) == 3 and c not in _NOT_INVOICEABLE)


def is_valid_currency(code: str) -> bool:
    return isinstance(code, str) and code in _currency_codes()


@lru_cache(maxsize=512)
def currency_exponent(currency: str) -> int:
    """Minor-unit exponent: USD 2, EUR 2, JPY 0, KWD 3."""
    return get_currency_precision(currency)


def money_quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-currency_exponent(currency))


def quantize_money(amount: Decimal, currency: str) -> Decimal:
    """Round half up to the currency's minor unit. The only rounding of money amounts."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"money must be Decimal, got {type(amount).__name__}")
    return amount.quantize(money_quantum(currency), rounding=ROUND_HALF_UP)


def quantize_unit_price(amount: Decimal) -> Decimal:
    return amount.quantize(UNIT_PRICE_QUANTUM, rounding=ROUND_HALF_UP).normalize() if amount else Decimal(0)


def to_minor_units(amount: Decimal, currency: str) -> int:
    """Integer minor units, for the Stripe boundary only."""
    return int(quantize_money(amount, currency).scaleb(currency_exponent(currency)))


def from_minor_units(value: int, currency: str) -> Decimal:
    return quantize_money(Decimal(value).scaleb(-currency_exponent(currency)), currency)


def parse_decimal(value: object) -> Decimal | None:
    """Exact Decimal from a JSON number or numeric string; None when it is not a finite number.

    Floats are converted through their shortest repr so 100.5 stays 100.5 exactly."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            result = Decimal(text)
        except InvalidOperation:
            return None
    else:
        return None
    return result if result.is_finite() else None


def money_input(value: object, *, currency: str, field: str, positive: bool = True,
                allow_negative: bool = False) -> Decimal:
    """An amount typed or posted by a person or a client → an exact Decimal in `currency`, or a 400
    naming `field`: a decimal (floats refused, not converted), a valid currency, at most the
    currency's decimal places, more than 0 (`positive`), else not negative unless `allow_negative`."""
    amount = None if isinstance(value, float) else parse_decimal(value)
    if amount is None:
        raise ApplicationError(f"{field} must be a decimal amount.", fields={field: ["not a decimal"]})
    if not is_valid_currency(currency):
        raise ApplicationError(f"'{currency}' is not an ISO 4217 currency code.", fields={"currency": ["invalid"]})
    if quantize_money(amount, currency) != amount:
        raise ApplicationError(f"{field}: at most {currency_exponent(currency)} decimal places for {currency}.",
                               fields={field: ["too many decimal places"]})
    if positive and amount <= 0:
        raise ApplicationError(f"{field} must be more than 0.", fields={field: ["not positive"]})
    if not positive and not allow_negative and amount < 0:
        raise ApplicationError(f"{field} must not be negative.", fields={field: ["negative"]})
    return quantize_money(amount, currency)


def format_money(amount: Decimal, currency: str) -> str:
    """Canonical API string in major units with the currency's exponent: "720.00", "1500" (JPY)."""
    return f"{quantize_money(amount, currency):f}"


def format_price(value: Decimal, currency: str) -> str:
    """A price for people: at least the currency's decimals, more only when the price has them
    ("40.00", "0.004", "1500" for JPY)."""
    exponent = currency_exponent(currency)
    normalized = value.normalize()
    if -normalized.as_tuple().exponent <= exponent:
        return f"{quantize_money(value, currency):f}"  # only pads with zeros: nothing is rounded here
    return f"{normalized:f}"


def format_quantity(value: Decimal) -> str:
    """Exact decimal string without exponent or needless trailing zeros ("50", "0.004")."""
    if value == 0:
        return "0"
    return f"{value.normalize():f}"


# --- display: the one money formatter of the PDFs, e-mails and back-office pages ----------------

DEFAULT_LOCALE = "en_US"
# Neither the bundled PDF face nor DejaVu has the full-width yen sign babel uses for ja_JP; print the plain ¥.
_GLYPH_FALLBACKS = str.maketrans({"\uffe5": "\u00a5"})


@lru_cache(maxsize=256)
def document_locale(country: str | None) -> str:
    """A babel locale for a customer's country: its first official language that babel knows in that
    territory (US → en_US, DE → de_DE, JP → ja_JP, CH → de_CH); en_US without a country."""
    country = (country or "").strip().upper()
    if country:
        for language in get_official_languages(country, de_facto=True):
            candidate = f"{language}_{country}"
            try:
                Locale.parse(candidate)
            except (UnknownLocaleError, ValueError):
                continue
            return candidate
    return DEFAULT_LOCALE


def money_decimal(value) -> Decimal:
    """Decimal from a stored Decimal or a JSON string; never via float."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):  # pragma: no cover - JSON columns hold strings; refuse silently-lossy input
        raise TypeError("money on documents must be Decimal or str, not float")
    return Decimal(str(value))


def plain_decimal(value: Decimal) -> Decimal:
    """Drop trailing zeros without switching to exponent notation (60.000000000000 → 60)."""
    normalized = value.normalize()
    return normalized.quantize(Decimal(1)) if normalized.as_tuple().exponent > 0 else normalized


@dataclass(frozen=True)
class Formatter:
    currency: str
    locale: str

    def money(self, amount) -> str:
        value = quantize_money(money_decimal(amount), self.currency)
        return format_currency(value, self.currency, locale=self.locale).translate(_GLYPH_FALLBACKS)

    def minus(self, amount) -> str:
        """A reduction (discount, credit, payment) printed as a negative amount."""
        return self.money(-abs(money_decimal(amount)))

    def price(self, amount) -> str:
        """A unit price: at least the currency's decimals, more when the price has them."""
        return format_currency(plain_decimal(money_decimal(amount)), self.currency, locale=self.locale,
                               decimal_quantization=False).translate(_GLYPH_FALLBACKS)

    def quantity(self, value) -> str:
        return format_decimal(plain_decimal(money_decimal(value)), locale=self.locale, decimal_quantization=False)

    def percent(self, rate) -> str:
        """A tax rate stored in percent ("8.25") → "8.25%" / "8,25 %"."""
        return format_percent(plain_decimal(money_decimal(rate)) / 100, locale=self.locale, decimal_quantization=False)


def format_money_display(amount, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """An amount as people read it ("$1,234.50", "¥14,300", "€9.00"): quantized once, babel-formatted."""
    return Formatter(currency=currency, locale=locale).money(amount)
