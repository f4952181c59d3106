"""Usage event store, idempotency keys and dead letters.

Physical layout (see usage/README.md and migration 0001):
- `usage_event` is RANGE-partitioned by `timestamp` into monthly UTC partitions
  (`usage_event_yYYYYmMM`). Its database primary key is (id, timestamp) because a partitioned
  table's unique indexes must contain the partition key; Django addresses rows by `id` alone
  (ids come from one sequence, so they are unique in practice).
- `usage_event_key` is a small unpartitioned table holding the global idempotency key
  (`transaction_id` primary key) with the payload hash and where the event lives.
- Event foreign keys carry no database constraint (the hot path validates them before the
  insert, and customers/subscriptions/metrics are never deleted: PROTECT everywhere else).
"""

from __future__ import annotations

from django.db import models

# The aggregated value: exact, enough for money volumes (26 integer digits) and prices (12 places).
VALUE_MAX_DIGITS = 38
VALUE_DECIMAL_PLACES = 12


class UsageEvent(models.Model):
    id = models.BigAutoField(primary_key=True)
    transaction_id = models.CharField(max_length=255)
    customer = models.ForeignKey("customers.Customer", on_delete=models.DO_NOTHING, db_constraint=False,
                                 related_name="+")
    subscription = models.ForeignKey("subscriptions.Subscription", on_delete=models.DO_NOTHING, db_constraint=False,
                                     related_name="+")
    metric = models.ForeignKey("catalog.BillableMetric", on_delete=models.DO_NOTHING, db_constraint=False,
                               related_name="+")
    timestamp = models.DateTimeField()
    properties = models.JSONField(default=dict)
    value = models.DecimalField(max_digits=VALUE_MAX_DIGITS, decimal_places=VALUE_DECIMAL_PLACES, null=True,
                                help_text="The metric's field as an exact Decimal (sum/max/latest)")
    unique_value = models.TextField(null=True, help_text="The metric's field as text (unique_count)")
    received_at = models.DateTimeField()
    is_late = models.BooleanField(default=False, help_text="Its period was already invoiced when it arrived")
    late_billed_at = models.DateTimeField(null=True)
    late_billed_invoice_id = models.UUIDField(null=True, help_text="Invoice that billed this late event")

    class Meta:
        db_table = "usage_event"
        ordering = ["-timestamp", "-id"]
        indexes = [
            models.Index(fields=["subscription", "metric", "timestamp"], name="usage_event_sub_metric_ts"),
            models.Index(fields=["subscription", "timestamp"], name="usage_event_late_unbilled",
                         condition=models.Q(is_late=True, late_billed_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"{self.transaction_id} @ {self.timestamp:%Y-%m-%dT%H:%M:%SZ}"


class UsageEventKey(models.Model):
    """The global idempotency key: one row per accepted transaction_id, forever."""

    transaction_id = models.CharField(max_length=255, primary_key=True)
    payload_hash = models.BinaryField(max_length=32)
    event_id = models.BigIntegerField()
    event_timestamp = models.DateTimeField()
    created_at = models.DateTimeField()

    class Meta:
        db_table = "usage_event_key"

    def __str__(self) -> str:
        return self.transaction_id


class RejectReason(models.TextChoices):
    MALFORMED_BODY = "malformed_body", "malformed body"
    INVALID = "invalid", "invalid or missing field"
    BATCH_TOO_LARGE = "batch_too_large", "batch too large"
    UNKNOWN_CUSTOMER = "unknown_customer", "unknown customer"
    UNKNOWN_SUBSCRIPTION = "unknown_subscription", "unknown subscription"
    UNKNOWN_METRIC = "unknown_metric", "unknown billable metric"
    SUBSCRIPTION_MISMATCH = "subscription_customer_mismatch", "subscription belongs to another customer"
    NO_SUBSCRIPTION = "no_matching_subscription", "no live subscription charges this metric"
    AMBIGUOUS_SUBSCRIPTION = "ambiguous_subscription", "several subscriptions charge this metric"
    OUTSIDE_SUBSCRIPTION = "outside_subscription_period", "timestamp outside the subscription"
    MISSING_PROPERTY = "missing_property", "aggregated property missing"
    NON_NUMERIC_PROPERTY = "non_numeric_property", "aggregated property not numeric"
    FUTURE_TIMESTAMP = "timestamp_in_future", "timestamp too far in the future"
    CONFLICT = "transaction_id_conflict", "same transaction_id, other payload"


class ReplayStatus(models.TextChoices):
    ACCEPTED = "accepted", "accepted"
    DUPLICATE = "duplicate", "duplicate"
    REJECTED = "rejected", "rejected again"


class DeadLetterEvent(models.Model):
    """A rejected event, kept with its raw body and reason so nothing posted is lost silently."""

    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    source = models.CharField(max_length=10, default="single", help_text="single or batch")
    batch_index = models.PositiveIntegerField(null=True, blank=True)
    raw_body = models.TextField(help_text="The event as posted (for batches: this event's JSON)")
    transaction_id = models.CharField(max_length=255, blank=True, db_index=True)
    customer_external_id = models.CharField(max_length=255, blank=True)
    subscription_external_id = models.CharField(max_length=255, blank=True)
    metric_code = models.CharField(max_length=120, blank=True)
    reason = models.CharField(max_length=40, choices=RejectReason.choices, db_index=True)
    message = models.TextField()
    fields = models.JSONField(default=dict, blank=True)
    replayed_at = models.DateTimeField(null=True, blank=True)
    replay_count = models.PositiveIntegerField(default=0)
    replay_status = models.CharField(max_length=12, choices=ReplayStatus.choices, blank=True)
    replay_reason = models.CharField(max_length=40, blank=True)
    replay_message = models.TextField(blank=True)
    replayed_by = models.CharField(max_length=120, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["reason", "received_at"], name="usage_dl_reason_received")]

    def __str__(self) -> str:
        return f"{self.reason}: {self.transaction_id or '(no id)'}"

    @property
    def is_resolved(self) -> bool:
        return self.replay_status in (ReplayStatus.ACCEPTED, ReplayStatus.DUPLICATE)


class UsageRollupDaily(models.Model):
    """One customer-local day of one subscription's usage of one metric, maintained at ingest in the
    same statement that stores the events (usage/README.md, "Daily rollups").

    The bucket is the customer's local calendar day when the event arrived, stored as its UTC
    instant range [bucket_start, bucket_end): a billing window (local period dates → UTC instants)
    covers whole buckets exactly, and a bucket that straddles a window edge (the customer's
    timezone changed since) is detected and that window is aggregated from raw events. On-time and
    late events are kept apart (`is_late`, fixed at ingest) so the on-time aggregate billing needs is
    one read. unique_count needs the values themselves: UsageRollupUnique."""

    pk = models.CompositePrimaryKey("subscription_id", "bucket_start", "metric_id", "is_late")
    subscription_id = models.BigIntegerField()
    metric_id = models.BigIntegerField()
    bucket_start = models.DateTimeField(help_text="UTC instant of the customer's local midnight starting the day")
    is_late = models.BooleanField()
    bucket_end = models.DateTimeField(help_text="UTC instant of the next local midnight (exclusive)")
    day = models.DateField(help_text="The customer-local date")
    customer_id = models.BigIntegerField()
    event_count = models.BigIntegerField()
    value_sum = models.DecimalField(max_digits=60, decimal_places=VALUE_DECIMAL_PLACES, null=True)
    value_max = models.DecimalField(max_digits=VALUE_MAX_DIGITS, decimal_places=VALUE_DECIMAL_PLACES, null=True)
    latest_ts = models.DateTimeField(null=True, help_text="Timestamp of the day's last event (ties: higher id)")
    latest_id = models.BigIntegerField(null=True)
    latest_value = models.DecimalField(max_digits=VALUE_MAX_DIGITS, decimal_places=VALUE_DECIMAL_PLACES, null=True)
    updated_at = models.DateTimeField()

    class Meta:
        db_table = "usage_rollup_daily"
        indexes = [models.Index(fields=["customer_id", "day"], name="usage_rollup_customer_day")]

    def __str__(self) -> str:
        return f"{self.subscription_id}/{self.metric_id} {self.day}{' late' if self.is_late else ''}: {self.event_count}"


class UsageRollupUnique(models.Model):
    """The distinct values of a unique_count metric per subscription and customer-local day (exact:
    a period's unique count is count(DISTINCT unique_value) over the days it covers)."""

    pk = models.CompositePrimaryKey("subscription_id", "bucket_start", "metric_id", "is_late", "unique_value")
    subscription_id = models.BigIntegerField()
    metric_id = models.BigIntegerField()
    bucket_start = models.DateTimeField()
    is_late = models.BooleanField()
    unique_value = models.TextField()
    bucket_end = models.DateTimeField()

    class Meta:
        db_table = "usage_rollup_unique"

    def __str__(self) -> str:
        return f"{self.subscription_id}/{self.metric_id} {self.bucket_start:%Y-%m-%d}: {self.unique_value}"
