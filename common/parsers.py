import json
import re
from decimal import Decimal

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

NUL = "\x00"
NUL_MESSAGE = "Text may not contain NUL (\\u0000) characters."
MAX_JSON_DEPTH = 32
DEPTH_MESSAGE = f"JSON nested deeper than {MAX_JSON_DEPTH} levels."
SURROGATE_MESSAGE = "Text may not contain lone UTF-16 surrogates (\\ud800-\\udfff)."
_SURROGATE = re.compile("[\ud800-\udfff]")


def json_document_problem(data, *, strings: bool = True) -> str | None:
    """What makes a parsed JSON document unstorable, or None. Iterative, so a hostile nesting depth
    cannot exhaust the stack: PostgreSQL text holds neither NUL nor lone surrogates (UTF-8 cannot
    encode them), and nothing in our API nests beyond a few levels. strings=False checks the depth
    only (the caller knows the text had no \\u escape, the only way JSON text can carry either)."""
    if not strings:
        return _too_deep(data)
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if NUL in value:
                return NUL_MESSAGE
            if _SURROGATE.search(value):
                return SURROGATE_MESSAGE
        elif isinstance(value, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                return DEPTH_MESSAGE
            items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
            for key, item in items:
                if key is not None:
                    stack.append((key, depth))
                stack.append((item, depth + 1))
    return None


def _too_deep(data) -> str | None:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return DEPTH_MESSAGE
        for item in value.values() if type(value) is dict else value if type(value) is list else ():
            if type(item) is dict or type(item) is list:
                stack.append((item, depth + 1))
    return None


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _load(stream, parser_context, **loads_kwargs):
    encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
    try:
        text = stream.read().decode(encoding)
        data = json.loads(text, parse_constant=_refuse_constant, **loads_kwargs)
    except RecursionError as exc:
        raise ParseError(DEPTH_MESSAGE) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"JSON parse error - {exc}") from exc
    # A NUL or a lone surrogate can only come from a \u escape (the raw characters are refused by
    # json.loads and by the UTF-8 decoder): without one, only the depth needs checking.
    if problem := json_document_problem(data, strings="\\u" in text):
        raise ParseError(problem)
    return data


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, refusing what PostgreSQL cannot store or what would exhaust the stack:
    NUL characters, lone surrogates, nesting deeper than MAX_JSON_DEPTH (400, not a 500 later)."""

    def parse(self, stream, media_type=None, parser_context=None):
        return _load(stream, parser_context)


class DecimalJSONParser(JSONParser):
    """As StrictJSONParser, and JSON numbers become exact Decimals (for usage properties), never floats."""

    def parse(self, stream, media_type=None, parser_context=None):
        return _load(stream, parser_context, parse_float=Decimal)
