from rest_framework import serializers

from common.money import is_valid_currency


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


class UpperCaseCharField(serializers.CharField):
    def to_internal_value(self, data):
        return super().to_internal_value(data).upper()
