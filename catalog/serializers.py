"""Thin API shapes for the catalog; validation of prices and properties lives in the services."""

from rest_framework import serializers

from catalog.models import Aggregation, BillableMetric, ChargeModel, Interval, PlanVersion
from catalog.rating import format_price
from common.money import format_money
from common.serializer_fields import CurrencyField

PRICE_KWARGS = dict(max_digits=28, decimal_places=12, min_value=0)


class BillableMetricSerializer(serializers.ModelSerializer):
    aggregation = serializers.ChoiceField(choices=Aggregation.choices)
    field = serializers.CharField(required=False, allow_blank=True, default="")

    class Meta:
        model = BillableMetric
        fields = ("code", "name", "description", "aggregation", "field", "created_at")
        read_only_fields = ("created_at",)
        extra_kwargs = {"code": {"validators": []}, "description": {"required": False}}


class ChargeInputSerializer(serializers.Serializer):
    billable_metric = serializers.CharField()
    model = serializers.ChoiceField(choices=ChargeModel.choices)
    properties = serializers.DictField(required=False, default=dict)
    invoice_display_name = serializers.CharField(required=False, allow_blank=True, default="")
    currency = serializers.CharField(required=False, allow_blank=True, help_text="Optional; must equal the plan's")


class PlanCreateSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=120)
    name = serializers.CharField(max_length=255)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    currency = CurrencyField()
    interval = serializers.ChoiceField(choices=Interval.choices)
    amount = serializers.DecimalField(required=False, default="0", **PRICE_KWARGS)
    pay_in_advance = serializers.BooleanField(required=False, default=True)
    trial_days = serializers.IntegerField(required=False, default=0, min_value=0)
    minimum_commitment = serializers.DecimalField(required=False, allow_null=True, default=None, **PRICE_KWARGS)
    charges = ChargeInputSerializer(many=True, required=False, default=list)


class PlanUpdateSerializer(serializers.Serializer):
    """PATCH: any subset. Price fields or `charges` (a full replacement list) create a new version."""

    name = serializers.CharField(max_length=255, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    currency = CurrencyField(required=False)
    interval = serializers.ChoiceField(choices=Interval.choices, required=False)
    amount = serializers.DecimalField(required=False, **PRICE_KWARGS)
    pay_in_advance = serializers.BooleanField(required=False)
    trial_days = serializers.IntegerField(required=False, min_value=0)
    minimum_commitment = serializers.DecimalField(required=False, allow_null=True, **PRICE_KWARGS)
    charges = ChargeInputSerializer(many=True, required=False)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        for charge in value.get("charges", []):
            if not charge.get("currency"):
                charge.pop("currency", None)
        return value


class ChargeOutputSerializer(serializers.Serializer):
    billable_metric = serializers.CharField(source="billable_metric.code")
    model = serializers.CharField()
    properties = serializers.DictField()
    invoice_display_name = serializers.CharField()


class PlanOutputSerializer(serializers.Serializer):
    """A plan as its version prices it (the current public version unless a version is asked for)."""

    code = serializers.CharField(source="plan.code")
    name = serializers.CharField(source="plan.name")
    description = serializers.CharField(source="plan.description")
    currency = serializers.CharField(source="plan.currency")
    interval = serializers.CharField(source="plan.interval")
    amount = serializers.SerializerMethodField()
    pay_in_advance = serializers.BooleanField()
    trial_days = serializers.IntegerField()
    minimum_commitment = serializers.SerializerMethodField()
    charges = ChargeOutputSerializer(many=True)
    version = serializers.IntegerField()
    customer = serializers.CharField(source="customer.external_id", default=None)
    created_at = serializers.DateTimeField(source="plan.created_at")
    version_created_at = serializers.DateTimeField(source="created_at")

    def get_amount(self, version: PlanVersion) -> str:
        return format_price(version.amount, version.plan.currency)

    def get_minimum_commitment(self, version: PlanVersion) -> str | None:
        if version.minimum_commitment is None:
            return None
        return format_money(version.minimum_commitment, version.plan.currency)
