"""Issue 10 items 3 (first half), 4 and 6: event values a column or the rating cannot hold, odd
numerals, negatives and out-of-range timestamps are rejected at ingestion: 400 naming the field,
and a dead letter."""

import json
from decimal import Decimal

import pytest

from tests.usage.helpers import event
from usage.models import DeadLetterEvent, UsageEvent

pytestmark = pytest.mark.django_db
URL = "/api/v1/events/"


def post(client, body: str):
    return client.post(URL, data=body, content_type="application/json")


def gb_event(tid: str, raw_value: str) -> str:
    """The value is spliced in as raw JSON (a number or a string literal)."""
    return ('{"transaction_id": "%s", "customer": "acme", "code": "storage_gb", '
            '"timestamp": "2026-03-10T12:00:00Z", "properties": {"gb": %s}}' % (tid, raw_value))


def assert_rejected(response, field: str, tid: str, why: str):
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert field in error["fields"] and why in error["message"]
    letter = DeadLetterEvent.objects.get(transaction_id=tid)
    assert letter.fields == {field: error["fields"][field]}
    assert not UsageEvent.objects.filter(transaction_id=tid).exists()


@pytest.mark.parametrize("raw", ["1e20", "1000000000000000", '"1000000000000000"', "-1e15"])
def test_values_beyond_what_the_rating_can_hold_are_rejected(usage_api, api_calls, raw):
    assert_rejected(post(usage_api, gb_event("big", raw)), "properties.gb", "big", "15 integer digits")


def test_the_largest_value_that_fits_is_accepted(usage_api, api_calls):
    assert post(usage_api, gb_event("fits", "999999999999999.999999999999")).status_code == 202
    assert UsageEvent.objects.get(transaction_id="fits").value == Decimal("999999999999999.999999999999")


@pytest.mark.parametrize("raw", ['"1_000"', '"\\u0661\\u0662\\u0663"', '" 5"', '"1e3"', '"+5"', '"0x10"', '"5."'])
def test_only_plain_decimal_strings_are_numbers(usage_api, api_calls, raw):
    assert_rejected(post(usage_api, gb_event("odd", raw)), "properties.gb", "odd", "plain decimal string")


@pytest.mark.parametrize("raw", ["-1e6", '"-0.5"', "-1"])
def test_negative_values_need_a_metric_that_allows_them(usage_api, api_calls, raw):
    assert_rejected(post(usage_api, gb_event("neg", raw)), "properties.gb", "neg", "must not be negative")


def test_a_metric_created_with_allow_negative_takes_negative_values(usage_api, billing_api, make_subscription):
    from tests.customers.factories import CustomerFactory

    created = billing_api.post("/api/v1/billable_metrics/", {"code": "temp_delta", "name": "Temperature",
                                                             "aggregation": "latest", "field": "c",
                                                             "allow_negative": True}, format="json")
    assert created.status_code == 201 and created.json()["allow_negative"] is True
    from catalog.models import BillableMetric

    make_subscription(BillableMetric.objects.get(code="temp_delta"), customer=CustomerFactory(external_id="acme"))
    body = event("cold", code="temp_delta", properties={"c": "-12.5"})
    assert post(usage_api, json.dumps(body)).status_code == 202
    assert UsageEvent.objects.get(transaction_id="cold").value == Decimal("-12.5")


def test_allow_negative_is_refused_on_a_count_metric(billing_api):
    response = billing_api.post("/api/v1/billable_metrics/", {"code": "hits", "name": "Hits", "aggregation": "count",
                                                              "allow_negative": True}, format="json")
    assert response.status_code == 400 and "allow_negative" in response.json()["error"]["fields"]
    assert billing_api.get("/api/v1/billable_metrics/").json()["count"] == 0


@pytest.mark.parametrize("timestamp", ["0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00Z", "1999-12-31T23:59:59Z",
                                       "9999-12-31T23:59:59-01:00"])
def test_timestamps_out_of_bounds_are_a_400_naming_the_field(usage_api, api_calls, timestamp):
    response = post(usage_api, json.dumps(event("old", timestamp=timestamp)))
    assert_rejected(response, "timestamp", "old", "from 2000-01-01 to 2099-12-31")
