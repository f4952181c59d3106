from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.money import is_valid_currency
from common.timeutil import DATE_MAX, DATE_MIN, date_in_bounds

INT32_MAX = 2**31 - 1  # PostgreSQL `integer`
INT64_MAX = 2**63 - 1  # PostgreSQL `bigint` (ids)
MAX_TRIAL_DAYS = 3660  # ten years; more would run past DATE_MAX from a recent start


class CurrencyField(serializers.CharField):
    """ISO 4217 code, case-insensitive on input, upper-case stored."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 3)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data).upper()
        if not is_valid_currency(value):
            raise serializers.ValidationError(f"'{data}' is not an ISO 4217 currency code.")
        return value


@extend_schema_field({"anyOf": [{"type": "string", "format": "email", "maxLength": 254},
                               {"type": "string", "maxLength": 0}]})
class OptionalEmailField(serializers.EmailField):
    """An e-mail address or "" (none): the schema says so, so an empty address is not a violation."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("max_length", 254)
        super().__init__(**kwargs)


class UpperCaseCharField(serializers.CharField):
    def to_internal_value(self, data):
        return super().to_internal_value(data).upper()


class BoundedDateField(serializers.DateField):
    """A business date (start, change, cancel, as_of, …) within DATE_MIN..DATE_MAX."""

    def to_internal_value(self, value):
        day = super().to_internal_value(value)
        if not date_in_bounds(day):
            raise serializers.ValidationError(f"{day} is out of range: dates must be between {DATE_MIN} and {DATE_MAX}.")
        return day

