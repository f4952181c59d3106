"""Thin API shapes for the catalog; validation of prices and properties lives in the services."""

from rest_framework import serializers

from catalog.models import Aggregation, BillableMetric, ChargeModel, Interval, PlanVersion
from common.money import MONEY_FIELD, PERCENT_FIELD, PRICE_FIELD, format_money, format_price
from common.serializer_fields import INT32_MAX, MAX_TRIAL_DAYS, BoundedDateField, CurrencyField

PRICE_KWARGS = dict(**PRICE_FIELD, min_value=0)


class BillableMetricSerializer(serializers.ModelSerializer):
    aggregation = serializers.ChoiceField(choices=Aggregation.choices)
    field = serializers.CharField(required=False, allow_blank=True, default="")

    class Meta:
        model = BillableMetric
        fields = ("code", "name", "description", "aggregation", "field", "allow_negative", "created_at")
        read_only_fields = ("created_at",)
        extra_kwargs = {"code": {"validators": []}, "description": {"required": False},
                        "allow_negative": {"required": False}}


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
    trial_days = serializers.IntegerField(required=False, default=0, min_value=0, max_value=MAX_TRIAL_DAYS)
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
    trial_days = serializers.IntegerField(required=False, min_value=0, max_value=MAX_TRIAL_DAYS)
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
    customer = serializers.CharField(source="customer.external_id", default=None, allow_null=True)
    created_at = serializers.DateTimeField(source="plan.created_at")
    version_created_at = serializers.DateTimeField(source="created_at")

    def get_amount(self, version: PlanVersion) -> str:
        return format_price(version.amount, version.plan.currency)

    def get_minimum_commitment(self, version: PlanVersion) -> str | None:
        if version.minimum_commitment is None:
            return None
        return format_money(version.minimum_commitment, version.plan.currency)


# --- taxes and coupons ---------------------------------------------------------------------------

from catalog.models import Coupon, CouponDuration, CouponKind, TaxRate  # noqa: E402


class TaxRateSerializer(serializers.ModelSerializer):
    rate = serializers.DecimalField(**PERCENT_FIELD)
    valid_from = BoundedDateField(required=False, allow_null=True)
    valid_to = BoundedDateField(required=False, allow_null=True)

    class Meta:
        model = TaxRate
        fields = ("id", "name", "country", "region", "rate", "active", "valid_from", "valid_to", "created_at")
        read_only_fields = ("id", "created_at")
        extra_kwargs = {"region": {"required": False}, "active": {"required": False, "default": True}}


class CouponCreateSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=120)
    name = serializers.CharField(max_length=255)
    kind = serializers.ChoiceField(choices=CouponKind.choices)
    amount_off = serializers.DecimalField(**MONEY_FIELD, required=False, allow_null=True, default=None)
    currency = serializers.CharField(required=False, allow_blank=True, default="")
    percent_off = serializers.DecimalField(**PERCENT_FIELD, required=False, allow_null=True,
                                           default=None)
    duration = serializers.ChoiceField(choices=CouponDuration.choices, required=False, default="once")
    duration_periods = serializers.IntegerField(required=False, allow_null=True, default=None, max_value=INT32_MAX)
    applies_to_plans = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    redeem_by = BoundedDateField(required=False, allow_null=True, default=None)
    max_redemptions = serializers.IntegerField(required=False, allow_null=True, default=None, max_value=INT32_MAX)


class CouponOutputSerializer(serializers.ModelSerializer):
    amount_off = serializers.SerializerMethodField()
    percent_off = serializers.SerializerMethodField()
    applies_to_plans = serializers.SerializerMethodField()

    class Meta:
        model = Coupon
        fields = ("code", "name", "kind", "amount_off", "currency", "percent_off", "duration", "duration_periods",
                  "applies_to_plans", "active", "redeem_by", "max_redemptions", "created_at")

    def get_amount_off(self, obj) -> str | None:
        return format_money(obj.amount_off, obj.currency) if obj.amount_off is not None else None

    def get_percent_off(self, obj) -> str | None:
        return f"{obj.percent_off.normalize():f}" if obj.percent_off is not None else None

    def get_applies_to_plans(self, obj) -> list[str]:
        return sorted(p.code for p in obj.applies_to_plans.all())
