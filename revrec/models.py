"""Revenue recognition (DESIGN.md §8): performance obligations, revenue schedules, the double-entry
journal and the accounting periods (month close).

- One `PerformanceObligation` per finalized invoice line, net of its share of the invoice discount
  (tax is never revenue). Its `ScheduleEntry` rows say how much is earned in each month
  (`revrec.schedules`, cumulative rounding: they always sum to the obligation exactly).
- The journal (`JournalEntry` + `JournalLine`) is the only source of the reports. Every line has
  one positive side; every entry balances per currency, enforced by PostgreSQL with a DEFERRABLE
  INITIALLY DEFERRED constraint trigger (migration 0002), checked at commit.
- Every entry is unique per (source_type, source_id, kind): the sync and the close are reruns-safe
  and race-safe by construction.
"""

from __future__ import annotations

from django.db import models
from simple_history.models import HistoricalRecords

from common.money import MONEY_FIELD


class Account(models.TextChoices):
    ACCOUNTS_RECEIVABLE = "accounts_receivable", "Accounts receivable"
    UNBILLED_RECEIVABLE = "unbilled_receivable", "Unbilled receivable"
    DEFERRED_REVENUE = "deferred_revenue", "Deferred revenue"
    REVENUE = "revenue", "Revenue"
    TAX_PAYABLE = "tax_payable", "Tax payable"
    CASH = "cash", "Cash"
    CUSTOMER_CREDIT = "customer_credit", "Customer credit"
    BAD_DEBT = "bad_debt", "Bad debt"


class ObligationKind(models.TextChoices):
    RATABLE = "ratable", "ratably by day over the service period"
    USAGE = "usage", "at consumption (its period)"
    POINT_IN_TIME = "point_in_time", "at the point of delivery"


class PerformanceObligation(models.Model):
    invoice = models.ForeignKey("invoicing.Invoice", on_delete=models.PROTECT, related_name="+")
    invoice_line = models.OneToOneField("invoicing.InvoiceLine", on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="+")
    currency = models.CharField(max_length=3)
    kind = models.CharField(max_length=16, choices=ObligationKind.choices)
    line_amount = models.DecimalField(**MONEY_FIELD, help_text="The invoice line amount before discount")
    discount = models.DecimalField(default=0, **MONEY_FIELD, help_text="Its share of the invoice discount")
    amount = models.DecimalField(**MONEY_FIELD, help_text="Revenue: line amount − discount share")
    credited = models.DecimalField(default=0, **MONEY_FIELD, help_text="Revenue taken back by credit notes")
    service_start = models.DateField()
    service_end = models.DateField(help_text="Half-open: first day after the service period")
    voided = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["invoice", "invoice_line"]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.currency} ({self.service_start}→{self.service_end})"


class EntryTreatment(models.TextChoices):
    DEFERRED = "deferred", "billed ahead: recognized from deferred revenue at its month's close"
    ACCRUED = "accrued", "earned before billed: accrued to unbilled receivable at its month's close"
    IMMEDIATE = "immediate", "earned when billed: revenue in the invoice entry"
    CREDIT = "credit", "recognized revenue taken back by a credit note"
    RELEASED = "released", "usage accrued at a month close before it was invoiced: the invoice credits unbilled receivable"


class ScheduleEntry(models.Model):
    obligation = models.ForeignKey(PerformanceObligation, on_delete=models.PROTECT, related_name="entries")
    month = models.DateField(help_text="First day of the month")
    amount = models.DecimalField(**MONEY_FIELD)
    treatment = models.CharField(max_length=12, choices=EntryTreatment.choices)
    posted_entry = models.ForeignKey("JournalEntry", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                     help_text="The journal entry that recognized it")

    history = HistoricalRecords()

    class Meta:
        ordering = ["obligation", "month", "pk"]
        indexes = [models.Index(fields=["month"], name="revrec_entry_open_month", condition=models.Q(posted_entry__isnull=True))]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m}: {self.amount}"


class JournalEntry(models.Model):
    date = models.DateField(db_index=True)
    currency = models.CharField(max_length=3)
    memo = models.CharField(max_length=500)
    source_type = models.CharField(max_length=20, db_index=True,
                                   help_text="invoice | payment | credit_note | void | recognition | refund | uncollectible")
    source_id = models.CharField(max_length=80)
    kind = models.CharField(max_length=20)
    invoice = models.ForeignKey("invoicing.Invoice", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey("customers.Customer", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    document_date = models.DateField(help_text="The source document's own date (differs from `date` when its month was closed)")
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["date", "pk"]
        verbose_name_plural = "journal entries"
        constraints = [models.UniqueConstraint(fields=["source_type", "source_id", "kind"], name="revrec_entry_unique_source")]
        indexes = [models.Index(fields=["invoice", "source_type"])]

    def __str__(self) -> str:
        return f"{self.date} {self.source_type}/{self.kind} {self.memo}"


class JournalLine(models.Model):
    entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="lines")
    account = models.CharField(max_length=24, choices=Account.choices)
    debit = models.DecimalField(default=0, **MONEY_FIELD)
    credit = models.DecimalField(default=0, **MONEY_FIELD)
    currency = models.CharField(max_length=3)
    invoice = models.ForeignKey("invoicing.Invoice", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    obligation = models.ForeignKey(PerformanceObligation, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["entry", "pk"]
        constraints = [models.CheckConstraint(
            condition=(models.Q(debit__gt=0, credit=0) | models.Q(credit__gt=0, debit=0)), name="revrec_line_one_side")]

    def __str__(self) -> str:
        return f"{self.account} Dr {self.debit} Cr {self.credit}"


class AccountingPeriod(models.Model):
    """A closed month: nothing more posts on a date inside it."""

    month = models.DateField(unique=True, help_text="First day of the month")
    closed_at = models.DateTimeField()
    closed_by = models.CharField(max_length=120, default="system")
    summary = models.JSONField(default=dict, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-month"]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} closed"


class UsageAccrual(models.Model):
    """Usage consumed in `month` and not invoiced at its close (DESIGN.md §8 first bullet):
    Dr unbilled receivable / Cr revenue, for one subscription's billing period. Cumulative: the
    period's usage rated from its first billable day through the month end, minus what earlier
    closes accrued for the same period. The invoice that bills the period releases it
    (`released_invoice`): its usage lines credit unbilled receivable for it."""

    subscription = models.ForeignKey("subscriptions.Subscription", on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="+")
    currency = models.CharField(max_length=3)
    period_start = models.DateField()
    period_end = models.DateField(help_text="Half-open: first day after the billing period")
    month = models.DateField(help_text="The closed month (first day)")
    rated_through = models.DateField(help_text="Half-open: usage rated up to this day (excluded)")
    amount = models.DecimalField(**MONEY_FIELD, help_text="Accrued this month (signed: a lower re-rating is negative)")
    cumulative = models.DecimalField(**MONEY_FIELD, help_text="The period's usage rated through the month end")
    entry = models.ForeignKey("revrec.JournalEntry", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    released_invoice = models.ForeignKey("invoicing.Invoice", null=True, blank=True, on_delete=models.PROTECT,
                                         related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["subscription", "period_start", "month"]
        constraints = [models.UniqueConstraint(fields=["subscription", "period_start", "month"],
                                               name="revrec_usage_accrual_once")]
        indexes = [models.Index(fields=["subscription", "released_invoice"])]

    def __str__(self) -> str:
        return f"usage accrual {self.month:%Y-%m} {self.amount} {self.currency}"
