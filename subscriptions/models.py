"""Subscriptions: who is on which plan version, how many seats, in which lifecycle state, and the
cursors the billing run sweeps over."""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from simple_history.models import HistoricalRecords

from common.models import TimestampedModel
from common.money import MONEY_FIELD, PRICE_FIELD


class SubscriptionStatus(models.TextChoices):
    TRIALING = "trialing", "trialing"
    ACTIVE = "active", "active"
    PAST_DUE = "past_due", "past due"
    CANCELED = "canceled", "canceled"
    ENDED = "ended", "ended"


LIVE_STATUSES = (SubscriptionStatus.TRIALING, SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)


class BillingTime(models.TextChoices):
    CALENDAR = "calendar", "calendar"
    ANNIVERSARY = "anniversary", "anniversary"


class Subscription(TimestampedModel):
    external_id = models.CharField(max_length=255, unique=True)
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="subscriptions")
    plan_version = models.ForeignKey("catalog.PlanVersion", on_delete=models.PROTECT, related_name="subscriptions")
    quantity = models.PositiveIntegerField(default=1)
    billing_time = models.CharField(max_length=12, choices=BillingTime.choices, default=BillingTime.CALENDAR)
    status = models.CharField(max_length=12, choices=SubscriptionStatus.choices, default=SubscriptionStatus.ACTIVE)
    start_date = models.DateField()
    trial_end_date = models.DateField(null=True, blank=True, help_text="First day after the trial")
    end_date = models.DateField(null=True, blank=True, help_text="First day no longer served (half-open)")
    cancel_at_period_end = models.BooleanField(default=False)
    canceled_at = models.DateTimeField(null=True, blank=True)
    # Billing cursors (half-open ends): the billing run sweeps from these, so reruns are no-ops.
    usage_billed_through = models.DateField(null=True, blank=True, help_text="Usage billed up to (exclusive)")
    advance_billed_through = models.DateField(null=True, blank=True, help_text="In-advance fees billed up to (exclusive)")

    history = HistoricalRecords()

    class Meta:
        ordering = ["external_id"]
        indexes = [models.Index(fields=["customer", "status"])]
        constraints = [
            models.CheckConstraint(condition=models.Q(quantity__gte=1), name="subscription_quantity_positive"),
            models.CheckConstraint(
                condition=models.Q(end_date__isnull=True) | models.Q(end_date__gte=models.F("start_date")),
                name="subscription_end_after_start",
            ),
        ]

    def __str__(self) -> str:
        return self.external_id

    @property
    def currency(self) -> str:
        return self.plan_version.plan.currency

    @property
    def interval(self) -> str:
        return self.plan_version.plan.interval


class ChangeKind(models.TextChoices):
    CREATED = "created", "created"
    PLAN = "plan", "plan change"
    QUANTITY = "quantity", "seat change"
    STATUS = "status", "status change"
    CANCEL = "cancel", "cancellation"


class SubscriptionChange(models.Model):
    """Append-only ledger of what changed, effective when. Pending changes (e.g. a downgrade at
    period end) have applied_at null until the period closes."""

    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="changes")
    kind = models.CharField(max_length=12, choices=ChangeKind.choices)
    effective_date = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    from_plan_version = models.ForeignKey("catalog.PlanVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    to_plan_version = models.ForeignKey("catalog.PlanVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    from_quantity = models.PositiveIntegerField(null=True, blank=True)
    to_quantity = models.PositiveIntegerField(null=True, blank=True)
    from_status = models.CharField(max_length=12, blank=True)
    to_status = models.CharField(max_length=12, blank=True)
    actor = models.CharField(max_length=120, default="system")
    inputs = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    # A pending change replaced by a later change of the same kind (or by an immediate cancel) is
    # never applied; the row stays, so the ledger keeps what was asked and when.
    superseded_at = models.DateTimeField(null=True, blank=True)
    superseded_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["subscription", "effective_date", "pk"]
        indexes = [models.Index(fields=["subscription", "effective_date"])]
        constraints = [
            # At most one scheduled (pending, live) change of each kind per subscription.
            models.UniqueConstraint(
                fields=["subscription", "kind"],
                condition=models.Q(applied_at__isnull=True, superseded_at__isnull=True),
                name="subscription_change_one_pending_per_kind",
            ),
        ]

    @property
    def is_pending(self) -> bool:
        return self.applied_at is None and self.superseded_at is None

    def __str__(self) -> str:
        return f"{self.subscription_id} {self.kind} @ {self.effective_date}"


class ProrationKind(models.TextChoices):
    CREDIT = "credit", "credit for unused time"
    CHARGE = "charge", "charge for remaining time"


class ProrationItem(TimestampedModel):
    """A pending invoice item produced by a plan/seat change or an immediate cancel. Invoicing turns
    each into a `proration` line exactly once (invoice_line is set when it is billed)."""

    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="proration_items")
    change = models.ForeignKey(SubscriptionChange, null=True, blank=True, on_delete=models.PROTECT, related_name="proration_items")
    kind = models.CharField(max_length=10, choices=ProrationKind.choices)
    description = models.CharField(max_length=255)
    currency = models.CharField(max_length=3)
    quantity = models.PositiveIntegerField(default=1)
    unit_amount = models.DecimalField(**PRICE_FIELD)
    amount = models.DecimalField(**MONEY_FIELD, help_text="Signed, quantized; credits are negative")
    period_start = models.DateField()
    period_end = models.DateField()
    plan_version = models.ForeignKey("catalog.PlanVersion", on_delete=models.PROTECT, related_name="+")
    invoiced_at = models.DateTimeField(null=True, blank=True)
    invoice_line_id = models.BigIntegerField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["subscription", "period_start", "pk"]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.currency} ({self.subscription_id})"
