"""Parsing and validating usage events, in Python and without queries (usage/README.md, "Ingestion").

`event_parse` checks one raw event's shape (400 `invalid` / `malformed_body`, per field);
`event_validate` checks it against what the batch's lookup found (metric, customer, subscription,
timestamps, the metric's property) and resolves the subscription and the daily rollup bucket.
Each rejection is an `IngestError` with its reason code and the fields it names."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Context, Decimal
from functools import lru_cache
from typing import Any

from catalog.models import Aggregation
from common.money import parse_decimal
from common.timeutil import DATE_MAX, DATE_MIN, date_in_bounds, local_date, local_date_bounds_utc
from subscriptions.models import LIVE_STATUSES
from usage.models import VALUE_DECIMAL_PLACES, RejectReason
from usage.services.payload import dumps_exact, payload_hash

FUTURE_TOLERANCE = timedelta(minutes=5)
MAX_ID_LENGTH = 255
LIVE = frozenset(str(s) for s in LIVE_STATUSES)
# An event value has at most 15 integer digits: the event column holds 26, but one event's value
# priced at 1.00 must still fit an invoice amount (MONEY_FIELD: 20 digits, 4 places → 16 integer
# digits), so a single poison event cannot overflow the rating of a whole billing run.
_MAX_INT_DIGITS = 15
# Strings must be plain decimals: Python's Decimal() also reads "1_000", "١٢٣" (Arabic-Indic
# digits), " 5 " and "1e3", which no client means as a usage quantity.
_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?", re.ASCII)
_WIDE = Context(prec=100)  # normalize without rounding


class Status:
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    REJECTED = "rejected"


@dataclass(frozen=True)
class IngestError:
    code: str
    message: str
    fields: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "fields": self.fields}


def reject(reason: str, message: str, **fields: str) -> IngestError:
    return IngestError(str(reason), message, {k: [v] for k, v in fields.items()})


def conflict_error(tid: str) -> IngestError:
    return reject(RejectReason.CONFLICT, f"transaction_id '{tid}' was already used for an event with another payload.",
                  transaction_id="conflict")


@dataclass(slots=True)
class ParsedEvent:
    """One posted event on its way through ingestion: parsed fields, then what validation resolved,
    then the outcome (`status`, `error`)."""

    index: int
    raw: Any
    transaction_id: str | None = None
    customer: str | None = None
    subscription: str | None = None
    code: str | None = None
    timestamp: datetime | None = None
    properties: dict | None = None
    hash: bytes = b""
    error: IngestError | None = None
    status: str | None = None
    # resolved
    customer_id: int | None = None
    subscription_id: int | None = None
    metric_id: int | None = None
    local_date: date | None = None
    value: Decimal | None = None
    unique_value: str | None = None
    bucket_start: datetime | None = None  # the customer-local day, as UTC instants (daily rollups)
    bucket_end: datetime | None = None


@dataclass(frozen=True, slots=True)
class MetricInfo:
    id: int
    aggregation: str
    field: str
    allow_negative: bool


@dataclass(frozen=True, slots=True)
class SubscriptionInfo:
    id: int
    external_id: str
    customer_id: int
    status: str
    start_date: date
    end_date: date | None
    customer_external_id: str
    timezone: str
    metric_ids: frozenset

    def serves(self, day: date) -> bool:
        return self.start_date <= day and (self.end_date is None or day < self.end_date)


@dataclass(frozen=True)
class Lookup:
    """What one lookup query found for a batch (usage_ingest_lookup)."""

    metrics: dict[str, MetricInfo]
    customers: dict[str, tuple[int, str]]  # external id → (id, timezone)
    subscriptions: dict[str, SubscriptionInfo]  # external id → subscription
    live_by_customer: dict[str, list[SubscriptionInfo]]  # customer external id → subscriptions that served
    keys: dict[str, bytes]  # transaction id → stored payload hash


@lru_cache(maxsize=65536)
def _day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    return local_date_bounds_utc(day, day + timedelta(days=1), tz)


def _parse_timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) < 20 or "T" not in value.upper():
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None or not date_in_bounds(parsed.date()):
        return None  # year 1 with an offset would not even convert to UTC
    return parsed.astimezone(timezone.utc)


def _optional_id(event: dict, key: str) -> tuple[str | None, IngestError | None]:
    value = event.get(key)
    if value is None:
        return None, None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_LENGTH:
        return None, reject(RejectReason.INVALID,
                            f"'{key}' must be a non-empty string of at most {MAX_ID_LENGTH} characters.",
                            **{key: "invalid"})
    return value, None


def event_parse(index: int, raw: Any) -> ParsedEvent:
    """The event's shape: a JSON object with transaction_id, customer and/or subscription, code,
    an RFC 3339 timestamp with offset and optional properties. Sets `error` when it is not."""
    item = ParsedEvent(index=index, raw=raw)
    if not isinstance(raw, dict):
        item.error = reject(RejectReason.MALFORMED_BODY, "An event must be a JSON object.")
        return item
    tid = raw.get("transaction_id")
    if not isinstance(tid, str) or not tid.strip() or len(tid) > MAX_ID_LENGTH:
        item.error = reject(RejectReason.INVALID,
                            "'transaction_id' is required: a non-empty string of at most 255 characters.",
                            transaction_id="required")
        return item
    item.transaction_id = tid
    item.timestamp = _parse_timestamp(raw.get("timestamp"))
    item.hash = payload_hash(raw, item.timestamp)
    errors: dict[str, list[str]] = {}
    item.customer, e1 = _optional_id(raw, "customer")
    item.subscription, e2 = _optional_id(raw, "subscription")
    for e in (e1, e2):
        if e:
            errors.update(e.fields)
    if item.customer is None and item.subscription is None and not errors:
        errors["customer"] = ["'customer' or 'subscription' is required"]
    code = raw.get("code")
    if not isinstance(code, str) or not code.strip():
        errors["code"] = ["required: the billable metric code"]
    else:
        item.code = code
    if item.timestamp is None:
        errors["timestamp"] = [f"required: an RFC 3339 timestamp with offset, from {DATE_MIN} to {DATE_MAX}"]
    properties = raw.get("properties")
    if properties is None:
        item.properties = {}
    elif isinstance(properties, dict):
        item.properties = properties
    else:
        errors["properties"] = ["must be an object"]
    if errors:
        name, messages = next(iter(errors.items()))
        item.error = IngestError(RejectReason.INVALID, f"{name}: {messages[0]}", errors)
    return item


def _extract_value(item: ParsedEvent, metric: MetricInfo) -> IngestError | None:
    aggregation, field_name = metric.aggregation, metric.field
    if aggregation == Aggregation.COUNT:
        return None
    props = item.properties or {}
    key = f"properties.{field_name}"
    raw = props.get(field_name)
    if raw is None:
        return reject(RejectReason.MISSING_PROPERTY, f"Property '{field_name}' is required by metric '{item.code}'.",
                      **{key: "required"})
    if aggregation == Aggregation.UNIQUE_COUNT:
        item.unique_value = raw if isinstance(raw, str) else dumps_exact(raw)
        return None
    value = parse_decimal(raw) if not isinstance(raw, str) or _PLAIN_DECIMAL.fullmatch(raw) else None
    if value is None:
        return reject(RejectReason.NON_NUMERIC_PROPERTY,
                      f"Property '{field_name}' must be a number or a plain decimal string (ASCII digits, "
                      f"optional '-' and '.'), got {dumps_exact(raw)[:60]}.",
                      **{key: "not a number"})
    value = value.normalize(context=_WIDE) if value else Decimal(0)
    exponent = value.as_tuple().exponent
    if (isinstance(exponent, int) and exponent < -VALUE_DECIMAL_PLACES) or value.adjusted() >= _MAX_INT_DIGITS:
        return reject(RejectReason.NON_NUMERIC_PROPERTY,
                      f"Property '{field_name}' must have at most {VALUE_DECIMAL_PLACES} decimal places and "
                      f"{_MAX_INT_DIGITS} integer digits.", **{key: "out of range"})
    if value < 0 and not metric.allow_negative:
        return reject(RejectReason.NON_NUMERIC_PROPERTY,
                      f"Property '{field_name}' must not be negative: metric '{item.code}' does not allow negative "
                      "values (allow_negative).", **{key: "negative"})
    item.value = value
    return None


def event_validate(item: ParsedEvent, now: datetime, found: Lookup) -> IngestError | None:
    """Check a parsed event against the batch's lookup; on success its subscription, customer,
    metric, value and rollup bucket are set. No queries."""
    if item.timestamp > now + FUTURE_TOLERANCE:
        return reject(RejectReason.FUTURE_TIMESTAMP, "The timestamp is more than 5 minutes in the future.",
                      timestamp="in the future")
    metric = found.metrics.get(item.code)
    if metric is None:
        return reject(RejectReason.UNKNOWN_METRIC, f"Unknown billable metric '{item.code}'.", code="unknown")
    item.metric_id = metric.id
    error = _extract_value(item, metric)
    if error:
        return error
    if item.subscription:
        sub = found.subscriptions.get(item.subscription)
        if sub is None:
            return reject(RejectReason.UNKNOWN_SUBSCRIPTION, f"Unknown subscription '{item.subscription}'.",
                          subscription="unknown")
        if item.customer and item.customer != sub.customer_external_id:
            if item.customer not in found.customers:
                return reject(RejectReason.UNKNOWN_CUSTOMER, f"Unknown customer '{item.customer}'.", customer="unknown")
            return reject(RejectReason.SUBSCRIPTION_MISMATCH,
                          f"Subscription '{sub.external_id}' does not belong to customer '{item.customer}'.",
                          subscription="belongs to another customer")
        item.local_date = local_date(item.timestamp, sub.timezone)
        if not sub.serves(item.local_date):
            return reject(RejectReason.OUTSIDE_SUBSCRIPTION,
                          f"The event's date {item.local_date} ({sub.timezone}) is outside subscription "
                          f"'{sub.external_id}' ({sub.start_date} to {sub.end_date or 'open'}).",
                          timestamp="outside the subscription")
        item.subscription_id, item.customer_id = sub.id, sub.customer_id
        item.bucket_start, item.bucket_end = _day_bounds(item.local_date, sub.timezone)
        return None
    customer = found.customers.get(item.customer)
    if customer is None:
        return reject(RejectReason.UNKNOWN_CUSTOMER, f"Unknown customer '{item.customer}'.", customer="unknown")
    item.customer_id, tz = customer
    item.local_date = local_date(item.timestamp, tz)
    candidates = [s for s in found.live_by_customer.get(item.customer, ())
                  if item.metric_id in s.metric_ids and s.serves(item.local_date)]
    if not candidates:
        return reject(RejectReason.NO_SUBSCRIPTION,
                      f"Customer '{item.customer}' has no live subscription on {item.local_date} whose plan charges "
                      f"'{item.code}'; send 'subscription' or create one, then replay.", subscription="no match")
    if len(candidates) > 1:
        names = ", ".join(sorted(s.external_id for s in candidates))
        return reject(RejectReason.AMBIGUOUS_SUBSCRIPTION,
                      f"Customer '{item.customer}' has several subscriptions charging '{item.code}' ({names}); "
                      "send 'subscription'.", subscription="ambiguous")
    item.subscription_id = candidates[0].id
    item.bucket_start, item.bucket_end = _day_bounds(item.local_date, tz)
    return None
