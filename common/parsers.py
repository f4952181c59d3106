import json
from decimal import Decimal

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

NUL = "\x00"
NUL_MESSAGE = "Text may not contain NUL (\\u0000) characters."


def contains_nul(value) -> bool:
    """PostgreSQL text cannot hold NUL: such input is refused at the edge, never half-stored."""
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(contains_nul(item) for item in value)
    return False


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, refusing NUL characters anywhere in the document (400, not a 500 later)."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        if contains_nul(data):
            raise ParseError(NUL_MESSAGE)
        return data


class DecimalJSONParser(JSONParser):
    """JSON numbers become exact Decimals (for usage properties), never floats; NUL refused."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            data = json.loads(stream.read().decode(encoding), parse_float=Decimal)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
        if contains_nul(data):
            raise ParseError(NUL_MESSAGE)
        return data
