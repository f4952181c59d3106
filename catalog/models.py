"""Catalog: billable metrics, versioned plans and their charges.

Prices (base amounts, unit amounts, tier prices) keep 12 decimal places; amounts on invoices are
quantized per line by the rating engine. Charge properties are JSON validated by
`catalog.validation` with every decimal stored as a string (exact)."""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from simple_history.models import HistoricalRecords

from common.models import TimestampedModel
from customers.models import validate_currency

PRICE_FIELD = dict(max_digits=28, decimal_places=12)


class Aggregation(models.TextChoices):
    COUNT = "count", "count"
    SUM = "sum", "sum"
    MAX = "max", "max"
    UNIQUE_COUNT = "unique_count", "unique count"
    LATEST = "latest", "latest"


NUMERIC_AGGREGATIONS = {Aggregation.SUM, Aggregation.MAX, Aggregation.LATEST}


class BillableMetric(TimestampedModel):
    code = models.CharField(max_length=120, unique=True)
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    aggregation = models.CharField(max_length=20, choices=Aggregation.choices)
    field = models.CharField(max_length=120, blank=True, help_text="Event property aggregated; empty for count")

    history = HistoricalRecords()

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(aggregation="count") | ~models.Q(field=""), name="metric_field_required_unless_count"
            ),
        ]

    def __str__(self) -> str:
        return self.code

    @property
    def is_numeric(self) -> bool:
        return self.aggregation in NUMERIC_AGGREGATIONS


class Interval(models.TextChoices):
    WEEK = "week", "week"
    MONTH = "month", "month"
    QUARTER = "quarter", "quarter"
    YEAR = "year", "year"


class Plan(TimestampedModel):
    """The plan's identity. Prices live on PlanVersion; editing prices adds a version."""

    code = models.CharField(max_length=120, unique=True)
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    currency = models.CharField(max_length=3, validators=[validate_currency])
    interval = models.CharField(max_length=10, choices=Interval.choices)

    history = HistoricalRecords()

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code

    @property
    def current_version(self) -> "PlanVersion | None":
        return self.versions.filter(customer__isnull=True).order_by("-version").first()


class PlanVersion(TimestampedModel):
    """Immutable once a subscription uses it. A version with `customer` set is a private override
    (customer-specific prices) derived from `based_on`."""

    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    amount = models.DecimalField(default=0, help_text="Base fee per seat per period", **PRICE_FIELD)
    pay_in_advance = models.BooleanField(default=True)
    trial_days = models.PositiveIntegerField(default=0)
    minimum_commitment = models.DecimalField(null=True, blank=True, **PRICE_FIELD)
    customer = models.ForeignKey("customers.Customer", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="private_plan_versions")
    based_on = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="overrides")

    history = HistoricalRecords()

    class Meta:
        ordering = ["plan__code", "version"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "version"], name="plan_version_unique"),
            models.CheckConstraint(condition=models.Q(amount__gte=0), name="plan_version_amount_non_negative"),
            models.CheckConstraint(
                condition=models.Q(minimum_commitment__isnull=True) | models.Q(minimum_commitment__gte=0),
                name="plan_version_minimum_non_negative",
            ),
            models.CheckConstraint(
                condition=models.Q(customer__isnull=True) | models.Q(based_on__isnull=False),
                name="plan_version_override_has_base",
            ),
        ]

    def __str__(self) -> str:
        suffix = f" for {self.customer.external_id}" if self.customer_id else ""
        return f"{self.plan.code} v{self.version}{suffix}"

    @property
    def currency(self) -> str:
        return self.plan.currency

    @property
    def interval(self) -> str:
        return self.plan.interval


class ChargeModel(models.TextChoices):
    STANDARD = "standard", "standard"
    PACKAGE = "package", "package"
    GRADUATED = "graduated", "graduated"
    VOLUME = "volume", "volume"
    PERCENTAGE = "percentage", "percentage"


class Charge(TimestampedModel):
    plan_version = models.ForeignKey(PlanVersion, on_delete=models.PROTECT, related_name="charges")
    billable_metric = models.ForeignKey(BillableMetric, on_delete=models.PROTECT, related_name="charges")
    model = models.CharField(max_length=20, choices=ChargeModel.choices)
    properties = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    position = models.PositiveIntegerField(default=0)
    invoice_display_name = models.CharField(max_length=255, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["plan_version", "position", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(model__in=["standard", "package", "graduated", "volume", "percentage"]),
                name="charge_model_known",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.billable_metric.code} ({self.model})"
