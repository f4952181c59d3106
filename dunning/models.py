"""Dunning (DESIGN.md §7): policies, one case per invoice with an amount due after a failed charge,
and the case's steps (retry, e-mail, escalation, final action), each with its scheduled instant
and its outcome. Steps are planned when the case opens (and re-planned when a decline changes its
class); `run_dunning` executes the due ones, each exactly once (dunning/services.py)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from simple_history.models import HistoricalRecords

from common.models import TimestampedModel
from common.money import MONEY_FIELD


def _default_retry_days():
    return [1, 3, 6, 10]


def _default_email_days():
    return [0, 3, 10]


class FinalAction(models.TextChoices):
    CANCEL_SUBSCRIPTION = "cancel_subscription", "invoice uncollectible, subscription canceled"
    KEEP_SUBSCRIPTION = "keep_subscription", "invoice uncollectible, subscription kept"


class DunningPolicy(TimestampedModel):
    """Editable by finance in the admin. One default; others apply per currency and/or customer
    segment (`customer.metadata["segment"]`), the most specific match winning."""

    name = models.CharField(max_length=120, unique=True)
    is_default = models.BooleanField(default=False)
    currency = models.CharField(max_length=3, blank=True, help_text="Blank: any currency")
    segment = models.CharField(max_length=64, blank=True, help_text='Blank: any; else customer.metadata["segment"]')
    active = models.BooleanField(default=True)
    retry_days = models.JSONField(default=_default_retry_days, help_text="Days after the first failure")
    max_retries = models.PositiveSmallIntegerField(default=4)
    retry_window_days = models.PositiveSmallIntegerField(default=14)
    email_days = models.JSONField(default=_default_email_days, help_text="Days after the first failure (0 = at once)")
    escalate_day = models.PositiveSmallIntegerField(default=14)
    final_day = models.PositiveSmallIntegerField(default=21)
    final_action = models.CharField(max_length=32, choices=FinalAction.choices, default=FinalAction.CANCEL_SUBSCRIPTION)
    network_cap_attempts = models.PositiveSmallIntegerField(default=15)
    network_cap_days = models.PositiveSmallIntegerField(default=30)
    smart_timing = models.BooleanField(default=True, help_text="Retry at the customer's usual successful-payment hour")
    default_retry_hour = models.PositiveSmallIntegerField(default=10, help_text="Local hour without history")
    payday_alignment = models.BooleanField(default=True, help_text="insufficient_funds retries move to pay days")
    fixed_time_of_day = models.BooleanField(
        default=False, help_text="A plain fixed schedule: each retry exactly N days after the first failure, at its "
                                 "time of day (no smart hour, no pay days)")

    history = HistoricalRecords()

    class Meta:
        verbose_name_plural = "dunning policies"
        ordering = ["-is_default", "name"]
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=models.Q(is_default=True),
                                    name="dunning_policy_one_default"),
            models.CheckConstraint(condition=models.Q(default_retry_hour__lte=23), name="dunning_policy_hour_0_23"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        errors = {}
        for name in ("retry_days", "email_days"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(d, int) and 0 <= d <= 365 for d in value):
                errors[name] = "a list of whole days between 0 and 365"
        if isinstance(self.retry_days, list) and any(d < 1 for d in self.retry_days if isinstance(d, int)):
            errors["retry_days"] = "retries start on day 1 at the earliest"
        if self.final_day < self.escalate_day:
            errors["final_day"] = "the final action comes after the escalation"
        if errors:
            raise ValidationError(errors)


class CaseStatus(models.TextChoices):
    OPEN = "open", "open"
    ACTION_REQUIRED = "action_required", "action required"
    RECOVERED = "recovered", "recovered"
    EXHAUSTED = "exhausted", "exhausted"
    CANCELED = "canceled", "canceled"


LIVE_CASE_STATUSES = (CaseStatus.OPEN, CaseStatus.ACTION_REQUIRED)


class DunningCase(TimestampedModel):
    invoice = models.ForeignKey("invoicing.Invoice", on_delete=models.PROTECT, related_name="dunning_cases")
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="dunning_cases")
    subscription = models.ForeignKey("subscriptions.Subscription", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="dunning_cases")
    policy = models.ForeignKey(DunningPolicy, on_delete=models.PROTECT, related_name="cases")
    status = models.CharField(max_length=20, choices=CaseStatus.choices, default=CaseStatus.OPEN, db_index=True)
    decline_category = models.CharField(max_length=20, help_text="soft | customer_action | hard | merchant_fix")
    decline_code = models.CharField(max_length=64, blank=True, help_text="The latest decline")
    first_decline_code = models.CharField(max_length=64, blank=True)
    first_failed_at = models.DateTimeField()
    opening_attempt = models.ForeignKey("payments.PaymentAttempt", null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="+")
    amount_due = models.DecimalField(**MONEY_FIELD, help_text="At opening")
    currency = models.CharField(max_length=3)
    retry_hour = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Local hour chosen for retries")
    timing_inputs = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder,
                                     help_text="The payment history the retry hour was chosen from")
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.CharField(max_length=64, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-first_failed_at"]
        constraints = [
            models.UniqueConstraint(fields=["invoice"], condition=models.Q(status__in=["open", "action_required"]),
                                    name="dunning_one_live_case_per_invoice"),
        ]

    def __str__(self) -> str:
        return f"dunning {self.pk} ({self.status})"

    @property
    def decline_class(self) -> str:
        """API.md: soft | hard (every class that may not retry the same method reads as hard)."""
        return "soft" if self.decline_category == "soft" else "hard"


class StepKind(models.TextChoices):
    RETRY = "retry", "retry"
    EMAIL = "email", "e-mail"
    ESCALATE = "escalate", "escalate to manual review"
    FINAL = "final", "final action"


class StepStatus(models.TextChoices):
    SCHEDULED = "scheduled", "scheduled"
    DONE = "done", "done"
    SKIPPED = "skipped", "skipped"
    CANCELED = "canceled", "canceled"


class DunningStep(TimestampedModel):
    case = models.ForeignKey(DunningCase, on_delete=models.PROTECT, related_name="steps")
    kind = models.CharField(max_length=12, choices=StepKind.choices)
    sequence = models.PositiveSmallIntegerField(help_text="Retry number / e-mail number within the case")
    scheduled_at = models.DateTimeField(db_index=True)
    status = models.CharField(max_length=12, choices=StepStatus.choices, default=StepStatus.SCHEDULED, db_index=True)
    executed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=64, blank=True)
    decline_code = models.CharField(max_length=64, blank=True)
    attempt = models.ForeignKey("payments.PaymentAttempt", null=True, blank=True, on_delete=models.PROTECT,
                                related_name="dunning_steps")
    template = models.CharField(max_length=40, blank=True, help_text="E-mail steps: which message")
    rule = models.CharField(max_length=120)
    inputs = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)

    history = HistoricalRecords()

    class Meta:
        ordering = ["scheduled_at", "pk"]
        indexes = [models.Index(fields=["status", "scheduled_at"])]
        constraints = [
            models.UniqueConstraint(fields=["case", "kind", "sequence"], name="dunning_step_once"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.sequence} of case {self.case_id} at {self.scheduled_at:%Y-%m-%d %H:%M} ({self.status})"
