"""Finance analytics: the MRR movement ledger (DESIGN.md §11).

One row per customer, currency and month in which the customer's committed MRR at the month's end
differs from the previous month's end. The row says which movement it was (new, expansion,
contraction, churn, reactivation), by how much, and the MRR before and after, so the monthly bridge
`mrr_end = mrr_start + new + reactivation + expansion − contraction − churn` holds exactly.

The ledger is derived: `analytics.mrr` writes it from the subscription change ledger and the
coupon redemptions, live (through `common.hooks`) and again on `analytics_rebuild`. It carries no
history table: it is never edited by hand, and any row can be recomputed from its sources.
"""

from __future__ import annotations

from django.db import models

MONEY_FIELD = dict(max_digits=20, decimal_places=4)


class MovementKind(models.TextChoices):
    NEW = "new", "new"
    EXPANSION = "expansion", "expansion"
    CONTRACTION = "contraction", "contraction"
    CHURN = "churn", "churn"
    REACTIVATION = "reactivation", "reactivation"


# Sign of each movement in the bridge identity.
MOVEMENT_SIGN = {
    MovementKind.NEW: 1, MovementKind.REACTIVATION: 1, MovementKind.EXPANSION: 1,
    MovementKind.CONTRACTION: -1, MovementKind.CHURN: -1,
}


class MrrMovement(models.Model):
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="mrr_movements")
    currency = models.CharField(max_length=3)
    month = models.DateField(help_text="First day of the month whose end-of-month MRR moved")
    kind = models.CharField(max_length=14, choices=MovementKind.choices)
    amount = models.DecimalField(help_text="Positive size of the movement", **MONEY_FIELD)
    mrr_before = models.DecimalField(help_text="MRR at the end of the previous month", **MONEY_FIELD)
    mrr_after = models.DecimalField(help_text="MRR at the end of this month", **MONEY_FIELD)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["month", "customer_id"]
        indexes = [models.Index(fields=["currency", "month"])]
        constraints = [
            models.UniqueConstraint(fields=["customer", "currency", "month"], name="mrr_movement_one_per_customer_month"),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="mrr_movement_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} {self.kind} {self.amount} {self.currency} ({self.customer_id})"

    @property
    def signed_amount(self):
        return self.amount * MOVEMENT_SIGN[self.kind]


# --- Usage intelligence (DESIGN.md §12) ----------------------------------------------------------

VALUE_FIELD = dict(max_digits=38, decimal_places=12)


class AnomalyKind(models.TextChoices):
    SPIKE = "spike", "spike"
    DROP = "drop", "drop"
    ZERO_USAGE = "zero_usage", "zero usage"
    INVOICE_SPIKE = "invoice_spike", "invoice spike"


class AnomalyStatus(models.TextChoices):
    OPEN = "open", "open"
    DISMISSED = "dismissed", "dismissed"
    CONFIRMED = "confirmed", "confirmed"


class Anomaly(models.Model):
    """One flagged day of one subscription's metric (or one draft invoice for `invoice_spike`), with the
    score, method and inputs that produced it (`analytics.anomalies`)."""

    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="+")
    subscription = models.ForeignKey("subscriptions.Subscription", on_delete=models.PROTECT, related_name="+")
    billable_metric = models.ForeignKey("catalog.BillableMetric", null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="+")
    invoice = models.ForeignKey("invoicing.Invoice", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                help_text="The draft an invoice_spike was raised on")
    date = models.DateField(help_text="Customer-local usage day (invoice_spike: the billing date)")
    kind = models.CharField(max_length=16, choices=AnomalyKind.choices)
    observed = models.DecimalField(**VALUE_FIELD)
    expected = models.DecimalField(**VALUE_FIELD)
    score = models.DecimalField(max_digits=14, decimal_places=4)
    method = models.CharField(max_length=200)
    inputs = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=AnomalyStatus.choices, default=AnomalyStatus.OPEN, db_index=True)
    detected_at = models.DateTimeField()
    resolved_by = models.CharField(max_length=120, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-date", "-id"]
        indexes = [models.Index(fields=["subscription", "date"], name="anomaly_sub_date")]
        constraints = [
            models.UniqueConstraint(fields=["subscription", "billable_metric", "date", "kind"],
                                    condition=models.Q(billable_metric__isnull=False), name="anomaly_one_per_metric_day"),
            models.UniqueConstraint(fields=["invoice", "kind"], condition=models.Q(invoice__isnull=False),
                                    name="anomaly_one_per_invoice"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.date} sub {self.subscription_id} ({self.status})"


class AnomalyScan(models.Model):
    """The cursor of `detect_anomalies`: the last day scored (a rerun rescoring a day changes nothing)."""

    as_of = models.DateField()
    days_scored = models.PositiveIntegerField(default=0)
    anomalies_found = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-as_of", "-id"]

    def __str__(self) -> str:
        return f"scan through {self.as_of}"


class UsageAlert(models.Model):
    """A threshold on one metric of one subscription's open period, in units or in amount."""

    subscription = models.ForeignKey("subscriptions.Subscription", on_delete=models.PROTECT, related_name="+")
    billable_metric = models.ForeignKey("catalog.BillableMetric", on_delete=models.PROTECT, related_name="+")
    threshold_units = models.DecimalField(null=True, blank=True, **VALUE_FIELD)
    threshold_amount = models.DecimalField(null=True, blank=True, max_digits=20, decimal_places=4)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=120, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(
            condition=(models.Q(threshold_units__isnull=False, threshold_amount__isnull=True)
                       | models.Q(threshold_units__isnull=True, threshold_amount__isnull=False)),
            name="usage_alert_one_threshold")]

    def __str__(self) -> str:
        return f"alert {self.pk} on sub {self.subscription_id}"


class UsageAlertTrigger(models.Model):
    """An alert fired in one period (at most once: the unique constraint)."""

    alert = models.ForeignKey(UsageAlert, on_delete=models.CASCADE, related_name="triggers")
    period_start = models.DateField()
    triggered_at = models.DateTimeField()
    units = models.DecimalField(**VALUE_FIELD)
    amount = models.DecimalField(max_digits=20, decimal_places=4)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["alert", "period_start"], name="usage_alert_once_per_period")]
