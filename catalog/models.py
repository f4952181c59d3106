"""Catalog: billable metrics, versioned plans and their charges.

Prices (base amounts, unit amounts, tier prices) keep 12 decimal places; amounts on invoices are
quantized per line by the rating engine. Charge properties are JSON validated by
`catalog.validation` with every decimal stored as a string (exact)."""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from simple_history.models import HistoricalRecords

from common.models import TimestampedModel
from common.money import MONEY_FIELD, PERCENT_FIELD, PRICE_FIELD
from customers.models import validate_currency



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
    allow_negative = models.BooleanField(
        default=False, help_text="Accept negative event values (e.g. a `latest` gauge); otherwise they are rejected")

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


# --- taxes ---------------------------------------------------------------------------------------


class TaxRate(TimestampedModel):
    """A tax rate for a country, or for one region (state/province) of it.

    A customer gets the rates of its country and region when any exist, else its country-only
    rates (`catalog.selectors.tax_rates_for_customer`). Validity is half-open: `[valid_from, valid_to)`.
    Rates that taxed invoices are never edited: deactivate (or end) them and add a new one."""

    name = models.CharField(max_length=120, help_text="Printed on the invoice, e.g. 'CA state sales tax'")
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2")
    region = models.CharField(max_length=64, blank=True, help_text="Empty: the whole country")
    rate = models.DecimalField(help_text="Percent, e.g. 8.25", **PERCENT_FIELD)
    active = models.BooleanField(default=True)
    valid_from = models.DateField(null=True, blank=True)
    valid_to = models.DateField(null=True, blank=True, help_text="First day no longer valid (exclusive)")

    history = HistoricalRecords()

    class Meta:
        ordering = ["country", "region", "name"]
        indexes = [models.Index(fields=["country", "region", "active"])]
        constraints = [
            models.CheckConstraint(condition=models.Q(rate__gte=0) & models.Q(rate__lte=100), name="tax_rate_percent_range"),
            models.CheckConstraint(condition=models.Q(country__regex=r"^[A-Z]{2}$"), name="tax_rate_country_iso"),
            models.CheckConstraint(
                condition=models.Q(valid_from__isnull=True) | models.Q(valid_to__isnull=True)
                | models.Q(valid_to__gt=models.F("valid_from")),
                name="tax_rate_valid_range",
            ),
        ]

    def __str__(self) -> str:
        where = f"{self.country}-{self.region}" if self.region else self.country
        return f"{self.name} ({where} {self.rate.normalize():f}%)"


# --- coupons -------------------------------------------------------------------------------------

class CouponKind(models.TextChoices):
    FIXED = "fixed", "fixed amount"
    PERCENT = "percent", "percent"


class CouponDuration(models.TextChoices):
    ONCE = "once", "once"
    REPEATING = "repeating", "repeating (N periods)"
    FOREVER = "forever", "forever"


class Coupon(TimestampedModel):
    """A discount definition. Fixed coupons carry `amount_off` in `currency`; percent coupons
    `percent_off`. Applied to a customer (optionally one subscription) by an invoicing.CouponRedemption.
    Prices are never edited: only name, active, redeem_by and max_redemptions change."""

    code = models.CharField(max_length=120, unique=True)
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=10, choices=CouponKind.choices)
    amount_off = models.DecimalField(null=True, blank=True, **MONEY_FIELD)
    currency = models.CharField(max_length=3, blank=True, help_text="Fixed coupons only")
    percent_off = models.DecimalField(null=True, blank=True, **PERCENT_FIELD)
    duration = models.CharField(max_length=10, choices=CouponDuration.choices, default=CouponDuration.ONCE)
    duration_periods = models.PositiveIntegerField(null=True, blank=True, help_text="Repeating coupons: billing periods")
    applies_to_plans = models.ManyToManyField(Plan, blank=True, related_name="coupons",
                                              help_text="Empty: every plan")
    active = models.BooleanField(default=True)
    redeem_by = models.DateField(null=True, blank=True, help_text="Last day the coupon can be applied")
    max_redemptions = models.PositiveIntegerField(null=True, blank=True)

    history = HistoricalRecords(m2m_fields=[applies_to_plans])

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(kind="fixed", amount_off__isnull=False, amount_off__gt=0, percent_off__isnull=True)
                           & models.Q(currency__regex=r"^[A-Z]{3}$"))
                | models.Q(kind="percent", percent_off__isnull=False, percent_off__gt=0, percent_off__lte=100,
                           amount_off__isnull=True, currency=""),
                name="coupon_kind_amounts",
            ),
            models.CheckConstraint(
                condition=models.Q(duration="repeating", duration_periods__gte=1)
                | (~models.Q(duration="repeating") & models.Q(duration_periods__isnull=True)),
                name="coupon_duration_periods",
            ),
            models.CheckConstraint(condition=models.Q(max_redemptions__isnull=True) | models.Q(max_redemptions__gte=1),
                                   name="coupon_max_redemptions_positive"),
        ]

    def __str__(self) -> str:
        return self.code
