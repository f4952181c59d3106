"""Serializers of the usage intelligence records, found by convention by the outbound webhooks
(`webhooks.payloads`: `analytics.anomaly` → AnomalySerializer) so `anomaly.detected` and
`usage.threshold_crossed` carry the resource as the API shows it."""

from rest_framework import serializers

from analytics.alerts import usage_alerts_for_subscription
from analytics.selectors_intel import anomaly_as_dict


class AnomalySerializer(serializers.BaseSerializer):
    def to_representation(self, instance):
        return anomaly_as_dict(instance)


class UsageAlertSerializer(serializers.BaseSerializer):
    def to_representation(self, instance):
        rows = usage_alerts_for_subscription(subscription=instance.subscription)
        return next(r for r in rows if r["id"] == instance.pk)
