"""Dunning case representation (API.md "Dunning")."""

from __future__ import annotations

from rest_framework import serializers

from common.money import format_money
from dunning.models import DunningCase
from dunning.selectors import case_attempts, case_next_action


class AttemptSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    outcome = serializers.CharField(help_text="succeeded | failed | pending")
    decline_code = serializers.CharField(allow_null=True)
    rule = serializers.CharField()
    attempt_number = serializers.IntegerField(allow_null=True)


class NextActionSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["retry", "email", "escalate", "final"])
    at = serializers.DateTimeField()


class FirstFailureSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    decline_code = serializers.CharField(allow_null=True)


class DunningCaseSerializer(serializers.ModelSerializer):
    invoice = serializers.CharField(source="invoice_id")
    customer = serializers.CharField(source="customer.external_id")
    decline_class = serializers.ChoiceField(choices=["soft", "hard"])
    decline_category = serializers.CharField()
    attempts = serializers.SerializerMethodField()
    next_action = serializers.SerializerMethodField()
    first_failure = serializers.SerializerMethodField()
    policy = serializers.CharField(source="policy.name")
    amount_due = serializers.SerializerMethodField()
    subscription = serializers.SerializerMethodField()

    class Meta:
        model = DunningCase
        fields = ("id", "invoice", "customer", "subscription", "status", "decline_class", "decline_category",
                  "decline_code", "attempts", "next_action", "policy", "first_failure", "amount_due", "currency",
                  "retry_hour", "closed_at", "close_reason", "created_at")
        read_only_fields = fields

    @staticmethod
    def get_attempts(case) -> AttemptSerializer(many=True):  # noqa: F821 - drf-spectacular type hint
        return AttemptSerializer(case_attempts(case), many=True).data

    @staticmethod
    def get_next_action(case) -> NextActionSerializer(allow_null=True):
        action = case_next_action(case)
        return NextActionSerializer(action).data if action else None

    @staticmethod
    def get_first_failure(case) -> FirstFailureSerializer:
        return FirstFailureSerializer({"at": case.first_failed_at, "decline_code": case.first_decline_code or None}).data

    @staticmethod
    def get_amount_due(case) -> str:
        return format_money(case.invoice.amount_due, case.currency)

    @staticmethod
    def get_subscription(case) -> str | None:
        return case.subscription.external_id if case.subscription_id else None
