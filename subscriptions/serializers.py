"""Thin API shapes: input validation of types only; business rules live in the services."""

from rest_framework import serializers

from common.money import MONEY_FIELD, format_money
from common.serializer_fields import INT32_MAX, MAX_TRIAL_DAYS, BoundedDateField
from subscriptions.models import BillingTime, ProrationItem, Subscription, SubscriptionChange
from subscriptions.selectors import PENDING_CHANGES_ATTR, subscription_current_period, subscription_pending_changes

EFFECTIVE = ("immediately", "period_end")


class SubscriptionCreateSerializer(serializers.Serializer):
    external_id = serializers.CharField(max_length=255)
    customer = serializers.CharField(max_length=255)
    plan = serializers.CharField(max_length=120)
    plan_version = serializers.IntegerField(required=False, min_value=1, max_value=INT32_MAX,
                                            help_text="A specific version number (e.g. a customer's private override); default the current public one")
    start_date = BoundedDateField(required=False)
    billing_time = serializers.ChoiceField(choices=BillingTime.values, default=BillingTime.CALENDAR)
    quantity = serializers.IntegerField(default=1, min_value=1, max_value=INT32_MAX)
    trial_days = serializers.IntegerField(required=False, min_value=0, max_value=MAX_TRIAL_DAYS, help_text="Overrides the plan's trial days")


class ChangePlanSerializer(serializers.Serializer):
    plan = serializers.CharField(max_length=120)
    plan_version = serializers.IntegerField(required=False, min_value=1, max_value=INT32_MAX)
    effective = serializers.ChoiceField(choices=EFFECTIVE, required=False,
                                        help_text="Default: upgrades immediately, downgrades at period end")
    date = BoundedDateField(required=False, help_text="Effective date (customer-local), default today")


class ChangeQuantitySerializer(serializers.Serializer):
    quantity = serializers.IntegerField(min_value=1, max_value=INT32_MAX)
    effective = serializers.ChoiceField(choices=EFFECTIVE, required=False,
                                        help_text="Default: increases immediately, decreases at period end")
    date = BoundedDateField(required=False)


class CancelSerializer(serializers.Serializer):
    at = serializers.ChoiceField(choices=EFFECTIVE, default="period_end")
    date = BoundedDateField(required=False)


class SubscriptionChangeSerializer(serializers.ModelSerializer):
    from_plan_version = serializers.SerializerMethodField()
    to_plan_version = serializers.SerializerMethodField()
    applied = serializers.SerializerMethodField()

    class Meta:
        model = SubscriptionChange
        fields = ("id", "kind", "effective_date", "applied", "applied_at", "from_plan_version", "to_plan_version",
                  "from_quantity", "to_quantity", "from_status", "to_status", "created_at")

    def _version(self, version):
        return None if version is None else {"plan": version.plan.code, "version": version.version}

    def get_from_plan_version(self, obj) -> dict | None:
        return self._version(obj.from_plan_version)

    def get_to_plan_version(self, obj) -> dict | None:
        return self._version(obj.to_plan_version)

    def get_applied(self, obj) -> bool:
        return obj.applied_at is not None


class ProrationItemSerializer(serializers.ModelSerializer):
    amount = serializers.SerializerMethodField()
    unit_amount = serializers.SerializerMethodField()

    class Meta:
        model = ProrationItem
        fields = ("id", "kind", "description", "currency", "quantity", "unit_amount", "amount", "period_start", "period_end",
                  "invoiced_at")

    def get_amount(self, obj) -> str:
        return format_money(obj.amount, obj.currency)

    def get_unit_amount(self, obj) -> str:
        return f"{obj.unit_amount.normalize():f}"


class SubscriptionSerializer(serializers.ModelSerializer):
    customer = serializers.CharField(source="customer.external_id")
    plan = serializers.CharField(source="plan_version.plan.code")
    plan_version = serializers.IntegerField(source="plan_version.version")
    currency = serializers.CharField(source="customer.currency")
    interval = serializers.CharField(source="plan_version.plan.interval")
    current_period_start = serializers.SerializerMethodField()
    current_period_end = serializers.SerializerMethodField()
    pending_changes = serializers.SerializerMethodField()

    class Meta:
        model = Subscription
        fields = ("external_id", "customer", "plan", "plan_version", "currency", "interval", "quantity", "status",
                  "billing_time", "start_date", "trial_end_date", "current_period_start", "current_period_end",
                  "cancel_at_period_end", "end_date", "canceled_at", "pending_changes", "created_at", "updated_at")

    def _period(self, obj):
        """None when the period cannot be computed (a row stored before dates were bounded, e.g.
        a start in year 9999): one such row must not fail a whole list."""
        cache = self.context.setdefault("_periods", {})
        if obj.pk not in cache:
            try:
                cache[obj.pk] = subscription_current_period(subscription=obj)
            except (OverflowError, ValueError):
                cache[obj.pk] = None
        return cache[obj.pk]

    def get_current_period_start(self, obj) -> str | None:
        period = self._period(obj)
        return period.start.isoformat() if period else None

    def get_current_period_end(self, obj) -> str | None:
        period = self._period(obj)
        return period.end.isoformat() if period else None

    def get_pending_changes(self, obj) -> list:
        pending = getattr(obj, PENDING_CHANGES_ATTR, None)  # prefetched by subscriptions_list
        if pending is None:
            pending = subscription_pending_changes(subscription=obj).select_related("from_plan_version__plan",
                                                                                   "to_plan_version__plan")
        return SubscriptionChangeSerializer(pending, many=True).data


class PriceOverrideSerializer(serializers.Serializer):
    amount = serializers.DecimalField(required=False, **MONEY_FIELD, coerce_to_string=False,
                                      help_text="Base fee per seat per period")
    charges = serializers.ListField(child=serializers.DictField(), required=False,
                                    help_text="The full list of charges, as in POST /plans/")
    date = serializers.DateField(required=False, help_text="In force from (customer-local), default today")
