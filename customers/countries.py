from functools import lru_cache

from babel import Locale


@lru_cache(maxsize=1)
def country_codes() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes known to CLDR (numeric regions like '001' excluded)."""
    return frozenset(code for code in Locale("en").territories if len(code) == 2 and code.isalpha() and code != "ZZ")


def is_valid_country(code: str) -> bool:
    return isinstance(code, str) and code in country_codes()


EU_COUNTRIES = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE".split()
)
