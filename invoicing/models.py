"""Invoicing: billing runs, invoices and their lines, gapless number series, manual payments.

Money columns keep 4 decimal places (enough for every ISO 4217 exponent); each line amount is
quantized to the invoice currency's own exponent by `common.money.quantize_money` before it is
stored, and totals are sums of rounded lines (`invoicing.totals.invoice_totals`).

Idempotency is backed by the database: one cycle invoice per (subscription, billing_date)
(`invoice_unique_cycle_per_subscription_date`), one number per (series, number), one counter row
per (series, year)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from common.models import TimestampedModel
from common.money import MONEY_FIELD, PRICE_FIELD, QUANTITY_FIELD, format_money_display

DEFAULT_SERIES = "INV"


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", "draft"
    FINALIZED = "finalized", "finalized"
    PAID = "paid", "paid"
    VOID = "void", "void"
    UNCOLLECTIBLE = "uncollectible", "uncollectible"


class InvoiceReason(models.TextChoices):
    SUBSCRIPTION_CYCLE = "subscription_cycle", "billing cycle"
    SUBSCRIPTION_CHANGE = "subscription_change", "plan/seat change or cancellation"
    LATE_USAGE = "late_usage", "late usage after the subscription ended"
    MANUAL = "manual", "manual"


class BillingRunStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    SUCCEEDED = "succeeded", "succeeded"
    PARTIAL = "partial", "finished with errors"
    FAILED = "failed", "failed"


class BillingRun(models.Model):
    """One sweep over the billing cursors up to `as_of`, split into chunks (BillingRunChunk) that
    run inline (synchronous form) or as Celery tasks on any number of workers (asynchronous form).
    Each chunk commits on its own together with its progress row, so a crashed run leaves
    consistent, resumable state; a run whose heartbeat goes stale is taken over by the next run
    (invoicing/billing_run.py)."""

    as_of = models.DateField(db_index=True)
    status = models.CharField(max_length=12, choices=BillingRunStatus.choices, default=BillingRunStatus.RUNNING)
    triggered_by = models.CharField(max_length=120, default="system")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, db_index=True,
                                        help_text="Last sign of life; a stale running run is taken over")
    # What the run was asked to do (a run taken over is resumed with the same parameters).
    cutoff_at = models.DateTimeField(null=True, blank=True,
                                     help_text="The `now` of an hourly run: periods close once ended locally")
    auto_finalize = models.BooleanField(default=True)
    chunk_size = models.PositiveIntegerField(default=1000)
    subscription_ids = models.JSONField(null=True, blank=True, help_text="Only these subscriptions (null: all)")
    # Progress.
    subscriptions_examined = models.PositiveIntegerField(default=0)
    subscriptions_due = models.PositiveIntegerField(default=0)
    subscriptions_done = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    invoices_created = models.PositiveIntegerField(default=0)
    lines_created = models.PositiveIntegerField(default=0)
    invoices_flagged = models.PositiveIntegerField(default=0)
    invoices_finalized = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    error = models.TextField(blank=True, help_text="Why the run failed as a whole")
    takeovers = models.PositiveIntegerField(default=0, help_text="Times a later run resumed it after it went stale")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"billing run {self.pk} as of {self.as_of} ({self.status})"


class BillingRunChunk(models.Model):
    """A progress row: one chunk of a run's due subscriptions. `done_at` is set in the same
    transaction as the chunk's invoices and cursor moves, so a chunk runs at most once."""

    run = models.ForeignKey(BillingRun, on_delete=models.CASCADE, related_name="chunks")
    position = models.PositiveIntegerField()
    subscription_ids = ArrayField(models.BigIntegerField())
    started_at = models.DateTimeField(null=True, blank=True, help_text="When the transaction that billed it began")
    done_at = models.DateTimeField(null=True, blank=True)
    invoices_created = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["run_id", "position"]
        constraints = [models.UniqueConstraint(fields=["run", "position"], name="billing_run_chunk_position_unique")]

    def __str__(self) -> str:
        return f"chunk {self.position} of billing run {self.run_id}"


class Invoice(TimestampedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    number = models.CharField(max_length=32, null=True, blank=True, unique=True)
    series = models.CharField(max_length=16, default=DEFAULT_SERIES)
    status = models.CharField(max_length=16, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT, db_index=True)
    reason = models.CharField(max_length=24, choices=InvoiceReason.choices, default=InvoiceReason.SUBSCRIPTION_CYCLE)
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="invoices")
    subscription = models.ForeignKey("subscriptions.Subscription", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="invoices")
    currency = models.CharField(max_length=3)
    billing_date = models.DateField(help_text="The billing date this invoice was generated for (customer-local)")
    issue_date = models.DateField()
    due_date = models.DateField(null=True, blank=True)
    period_start = models.DateField(null=True, blank=True)
    period_end = models.DateField(null=True, blank=True, help_text="Half-open: first day after the period")
    subtotal = models.DecimalField(default=0, **MONEY_FIELD)
    discount = models.DecimalField(default=0, **MONEY_FIELD)
    tax = models.DecimalField(default=0, **MONEY_FIELD)
    total = models.DecimalField(default=0, **MONEY_FIELD)
    amount_paid = models.DecimalField(default=0, **MONEY_FIELD)
    amount_due = models.DecimalField(default=0, **MONEY_FIELD)
    customer_snapshot = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder,
                                         help_text="Billing details frozen at finalize")
    needs_review = models.BooleanField(default=False, db_index=True)
    review_reasons = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    approved_by = models.CharField(max_length=120, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    billing_run = models.ForeignKey(BillingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="invoices")
    finalized_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    marked_uncollectible_at = models.DateTimeField(null=True, blank=True)
    # Issue 7: the totals breakdown (frozen at finalize) and the rendered document.
    discount_lines = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder,
                                      help_text="[{coupon_id, code, description, amount}]")
    tax_lines = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder,
                                 help_text="[{tax_rate_id, name, rate, taxable_amount, amount}]")
    tax_note = models.CharField(max_length=500, blank=True, help_text="Reverse charge / exemption wording")
    credit_balance_applied = models.DecimalField(default=0, **MONEY_FIELD)
    prepaid_applied = models.DecimalField(default=0, **MONEY_FIELD)
    pdf = models.FileField(upload_to="invoices/%Y/%m/", blank=True)
    pdf_rendered_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-billing_date", "-created_at"]
        indexes = [
            models.Index(fields=["subscription", "billing_date"]),
            models.Index(fields=["customer", "status"]),
            models.Index(fields=["status", "billing_date"]),
        ]
        constraints = [
            # One cycle invoice per subscription and billing date: reruns and concurrent runs can
            # never duplicate (the run also locks the subscription rows and advances cursors).
            models.UniqueConstraint(fields=["subscription", "billing_date"],
                                    condition=models.Q(reason="subscription_cycle"),
                                    name="invoice_unique_cycle_per_subscription_date"),
            models.CheckConstraint(condition=models.Q(status__in=["draft", "void"]) | models.Q(number__isnull=False),
                                   name="invoice_number_unless_draft"),
            models.CheckConstraint(condition=models.Q(currency__regex=r"^[A-Z]{3}$"), name="invoice_currency_iso"),
        ]

    def __str__(self) -> str:
        return self.number or f"draft {str(self.pk)[:8]}"


class LineKind(models.TextChoices):
    SUBSCRIPTION = "subscription", "subscription fee"
    USAGE = "usage", "usage"
    MINIMUM_COMMITMENT = "minimum_commitment", "minimum commitment true-up"
    PRORATION = "proration", "proration"
    LATE_USAGE = "late_usage", "late usage"
    CREDIT = "credit", "credit"
    ADJUSTMENT = "adjustment", "adjustment"


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="lines")
    position = models.PositiveIntegerField(default=0)
    kind = models.CharField(max_length=24, choices=LineKind.choices)
    description = models.CharField(max_length=500)
    billable_metric = models.ForeignKey("catalog.BillableMetric", null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="+")
    charge = models.ForeignKey("catalog.Charge", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    plan_version = models.ForeignKey("catalog.PlanVersion", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+")
    quantity = models.DecimalField(default=0, **QUANTITY_FIELD)
    unit_amount = models.DecimalField(null=True, blank=True, **PRICE_FIELD)
    amount = models.DecimalField(**MONEY_FIELD)
    period_start = models.DateField(null=True, blank=True)
    period_end = models.DateField(null=True, blank=True)
    tiers = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    taxable = models.BooleanField(default=True)
    metadata = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)

    # No history table: lines are written once with their invoice and never updated, except a draft's
    # usage line repriced before approval (`invoicing.draft_edits`, audited with the old and new
    # amounts); the admin shows them read-only; the invoice's own history covers the document.

    class Meta:
        ordering = ["invoice", "position", "pk"]

    def __str__(self) -> str:
        return f"{self.kind} {format_money_display(self.amount, self.invoice.currency)} ({self.description})"


class InvoiceNumberSeries(models.Model):
    """One counter row per series and year, locked with SELECT … FOR UPDATE at finalize: the
    number is taken in the same transaction as the status change, so a rollback returns it and
    numbers stay gapless."""

    series = models.CharField(max_length=16)
    year = models.PositiveIntegerField()
    last_value = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["series", "year"]
        verbose_name_plural = "invoice number series"
        constraints = [models.UniqueConstraint(fields=["series", "year"], name="invoice_number_series_unique")]

    def __str__(self) -> str:
        return f"{self.series}-{self.year}: {self.last_value}"


class Payment(TimestampedModel):
    """A payment recorded against an invoice (bank transfer recorded by finance, or later Stripe)."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payments")
    amount = models.DecimalField(**MONEY_FIELD)
    currency = models.CharField(max_length=3)
    paid_on = models.DateField()
    reference = models.CharField(max_length=255, blank=True)
    method = models.CharField(max_length=32, default="manual")
    recorded_by = models.CharField(max_length=120, default="system")
    recorded_by_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                         related_name="+")

    history = HistoricalRecords()

    class Meta:
        ordering = ["invoice", "paid_on", "pk"]
        constraints = [models.CheckConstraint(condition=models.Q(amount__gt=0), name="payment_amount_positive")]

    def __str__(self) -> str:
        return f"{format_money_display(self.amount, self.currency)} on {self.paid_on}"


class EmailStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    SENT = "sent", "sent"
    FAILED = "failed", "failed"


class InvoiceEmail(models.Model):
    """One delivery attempt of an invoice or credit note document to the customer."""

    invoice = models.ForeignKey(Invoice, null=True, blank=True, on_delete=models.PROTECT, related_name="emails")
    credit_note = models.ForeignKey("CreditNote", null=True, blank=True, on_delete=models.PROTECT, related_name="emails")
    to = models.CharField(max_length=500)
    subject = models.CharField(max_length=255)
    status = models.CharField(max_length=10, choices=EmailStatus.choices, default=EmailStatus.QUEUED)
    error = models.TextField(blank=True)
    requested_by = models.CharField(max_length=120, default="system")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.subject} → {self.to} ({self.status})"


class CreditNoteStatus(models.TextChoices):
    ISSUED = "issued", "issued"
    VOID = "void", "void"


class CreditNoteOutcome(models.TextChoices):
    CREDIT_BALANCE = "credit_balance", "credit to the customer's balance"
    REFUND = "refund", "refund"
    REDUCE_AMOUNT_DUE = "reduce_amount_due", "reduces the invoice's amount due"


class CreditNote(TimestampedModel):
    """A correction of a finalized invoice (which itself stays immutable). Numbered `CN-YYYY-NNNNNN`
    from its own gapless series at issue."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    number = models.CharField(max_length=32, unique=True)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="credit_notes")
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=10, choices=CreditNoteStatus.choices, default=CreditNoteStatus.ISSUED)
    outcome = models.CharField(max_length=20, choices=CreditNoteOutcome.choices)
    reason = models.CharField(max_length=500)
    issue_date = models.DateField()
    subtotal = models.DecimalField(default=0, **MONEY_FIELD, help_text="Credited before tax")
    tax = models.DecimalField(default=0, **MONEY_FIELD)
    total = models.DecimalField(default=0, **MONEY_FIELD)
    tax_lines = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    customer_snapshot = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    pdf = models.FileField(upload_to="credit_notes/%Y/%m/", blank=True)
    pdf_rendered_at = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(max_length=120, default="system")

    history = HistoricalRecords()

    class Meta:
        ordering = ["-issue_date", "-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(total__gt=0), name="credit_note_total_positive"),
        ]

    def __str__(self) -> str:
        return self.number


class CreditNoteLine(models.Model):
    credit_note = models.ForeignKey(CreditNote, on_delete=models.PROTECT, related_name="lines")
    invoice_line = models.ForeignKey(InvoiceLine, null=True, blank=True, on_delete=models.PROTECT, related_name="credit_lines")
    description = models.CharField(max_length=500)
    amount = models.DecimalField(**MONEY_FIELD, help_text="Credited amount before tax, positive")

    class Meta:
        ordering = ["credit_note", "pk"]

    def __str__(self) -> str:
        return f"{self.description}: {format_money_display(self.amount, self.credit_note.currency)}"


# --- coupon redemptions ---------------------------------------------------------------------------
# Coupon definitions (kind, amounts, duration) live in catalog; applying one to a customer and using
# it up on invoices is invoicing's business. The tables were created by catalog (migration 0003) and
# moved here state-only (catalog 0005, invoicing 0005), so they keep their `catalog_` names.

class CouponRedemption(models.Model):
    """A coupon applied to a customer (all its invoices) or to one subscription's invoices.

    Active while `removed_at` (finance removed it) and `ended_at` (used up: a `once` coupon after
    one invoice, a `repeating` one after `duration_periods` invoices) are both empty."""

    coupon = models.ForeignKey("catalog.Coupon", on_delete=models.PROTECT, related_name="redemptions")
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="coupon_redemptions")
    subscription = models.ForeignKey("subscriptions.Subscription", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="coupon_redemptions")
    periods_applied = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True, help_text="Used up")
    removed_at = models.DateTimeField(null=True, blank=True)

    # Not a billing document: the customer's currency may still change (a fixed coupon in the old
    # currency then stops applying). See customers.services._customer_has_billing_documents.
    locks_customer_currency = False

    history = HistoricalRecords(table_name="catalog_historicalcouponredemption")

    class Meta:
        db_table = "catalog_couponredemption"  # created by catalog 0003, moved here state-only
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["customer", "removed_at", "ended_at"], name="catalog_cou_custome_94f5a7_idx")]

    def __str__(self) -> str:
        target = self.subscription.external_id if self.subscription_id else self.customer.external_id
        return f"{self.coupon.code} → {target}"

    @property
    def is_active(self) -> bool:
        return self.removed_at is None and self.ended_at is None


class CouponUsage(models.Model):
    """One invoice that used a redemption. Unique per (redemption, invoice) so consuming the same
    invoice twice counts one period."""

    redemption = models.ForeignKey(CouponRedemption, on_delete=models.PROTECT, related_name="usages")
    invoice_id = models.CharField(max_length=64)
    amount = models.DecimalField(null=True, blank=True, help_text="Discount on that invoice", **MONEY_FIELD)
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords(table_name="catalog_historicalcouponusage")

    class Meta:
        db_table = "catalog_couponusage"
        ordering = ["created_at", "pk"]
        constraints = [models.UniqueConstraint(fields=["redemption", "invoice_id"], name="coupon_usage_once_per_invoice")]

    def __str__(self) -> str:
        return f"{self.redemption_id} on {self.invoice_id}"
