from rest_framework import serializers

from common.money import MONEY_FIELD
from common.serializer_fields import CurrencyField, OptionalEmailField, UpperCaseCharField
from customers.models import Customer, validate_country

CUSTOMER_API_FIELDS = (
    "external_id", "name", "currency", "email", "billing_email", "timezone", "country", "region", "address",
    "tax_id", "tax_exempt", "collection_method", "net_terms_days", "invoice_grace_period_days", "metadata",
    "created_at", "updated_at",
)


class CustomerSerializer(serializers.ModelSerializer):
    metadata = serializers.DictField(required=False)
    email = OptionalEmailField()
    billing_email = OptionalEmailField()
    currency = CurrencyField()
    country = UpperCaseCharField(max_length=2, required=False, allow_blank=True, validators=[validate_country])

    class Meta:
        model = Customer
        fields = CUSTOMER_API_FIELDS
        read_only_fields = ("created_at", "updated_at")
        # Uniqueness is the service's job (409, not 400).
        extra_kwargs = {"external_id": {"validators": []}}


class CustomerUpdateSerializer(CustomerSerializer):
    class Meta(CustomerSerializer.Meta):
        read_only_fields = ("external_id", "created_at", "updated_at")


class CreditGrantCreateSerializer(serializers.Serializer):
    amount = serializers.DecimalField(**MONEY_FIELD, coerce_to_string=False,
                                      help_text="Decimal string in the customer's currency")
    expires_on = serializers.DateField(required=False, allow_null=True,
                                       help_text="Last day the credit can be used (inclusive); none = no expiry")
    reference = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    currency = CurrencyField(required=False, help_text="Defaults to the customer's currency")
