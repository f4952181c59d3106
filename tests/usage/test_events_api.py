import json
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.catalog.factories import ChargeFactory
from tests.customers.factories import CustomerFactory
from tests.usage.helpers import event
from usage.models import DeadLetterEvent, UsageEvent, UsageEventKey

URL = "/api/v1/events/"
BATCH_URL = "/api/v1/events/batch/"


def post(client, body, url=URL):
    return client.post(url, data=json.dumps(body) if not isinstance(body, str) else body, content_type="application/json")


@pytest.mark.django_db
class TestSingleEvent:
    def test_accepted_resolves_the_subscription_and_stores_the_exact_value(self, usage_api, api_calls):
        response = post(usage_api, '{"transaction_id": "t1", "customer": "acme", "code": "storage_gb", '
                                   '"timestamp": "2026-03-10T12:00:00+02:00", "properties": {"gb": 0.1}}')
        assert response.status_code == 202
        assert response.json() == {"status": "accepted"}
        stored = UsageEvent.objects.get(transaction_id="t1")
        assert stored.subscription_id == api_calls.id
        assert stored.customer_id == api_calls.customer_id
        assert stored.value == Decimal("0.1")
        assert stored.timestamp.isoformat() == "2026-03-10T10:00:00+00:00"
        assert stored.is_late is False
        assert UsageEventKey.objects.get(transaction_id="t1").event_id == stored.id

    def test_numeric_string_is_read_as_exact_decimal(self, usage_api, api_calls):
        response = post(usage_api, event("t1", code="storage_gb", properties={"gb": "100.50"}))
        assert response.status_code == 202
        assert UsageEvent.objects.get(transaction_id="t1").value == Decimal("100.50")

    def test_repeat_with_same_payload_is_a_duplicate_counted_once(self, usage_api, api_calls):
        assert post(usage_api, event("t1")).status_code == 202
        again = post(usage_api, event("t1"))
        assert again.status_code == 200
        assert again.json() == {"status": "duplicate"}
        # the same instant written with another offset is the same payload
        same_instant = post(usage_api, event("t1", timestamp="2026-03-10T13:00:00+01:00"))
        assert same_instant.status_code == 200
        assert UsageEvent.objects.filter(transaction_id="t1").count() == 1
        assert not DeadLetterEvent.objects.exists()

    @pytest.mark.parametrize("first,again", [(5, '"5"'), ('"5"', 5), (5.5, '"5.5"'), ('"100.50"', '100.50')])
    def test_json_number_and_numeric_string_are_the_same_payload(self, usage_api, api_calls, first, again):
        body = '{{"transaction_id": "t1", "customer": "acme", "code": "storage_gb", ' \
               '"timestamp": "2026-03-10T12:00:00Z", "properties": {{"gb": {}}}}}'
        assert post(usage_api, body.format(first)).status_code == 202
        assert post(usage_api, body.format(again)).json() == {"status": "duplicate"}

    def test_same_id_other_payload_is_a_conflict_and_kept(self, usage_api, api_calls):
        assert post(usage_api, event("t1")).status_code == 202
        response = post(usage_api, event("t1", timestamp="2026-03-10T12:00:01Z"))
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "transaction_id_conflict"
        assert UsageEvent.objects.filter(transaction_id="t1").count() == 1
        letter = DeadLetterEvent.objects.get()
        assert letter.reason == "transaction_id_conflict" and letter.transaction_id == "t1"

    def test_explicit_subscription(self, usage_api, api_calls):
        response = post(usage_api, {"transaction_id": "t1", "subscription": "sub_acme", "code": "api_calls",
                                    "timestamp": "2026-03-10T12:00:00Z"})
        assert response.status_code == 202
        assert UsageEvent.objects.get().subscription_id == api_calls.id

    @pytest.mark.parametrize(
        "body, code, field",
        [
            (event("t1", customer="nobody"), "unknown_customer", "customer"),
            (event("t1", customer=None, subscription="sub_nope"), "unknown_subscription", "subscription"),
            (event("t1", code="nope"), "unknown_metric", "code"),
            (event("t1", code="storage_gb"), "missing_property", "properties.gb"),
            (event("t1", code="storage_gb", properties={"gb": None}), "missing_property", "properties.gb"),
            (event("t1", code="storage_gb", properties={"gb": "12abc"}), "non_numeric_property", "properties.gb"),
            (event("t1", code="storage_gb", properties={"gb": True}), "non_numeric_property", "properties.gb"),
            (event("t1", code="storage_gb", properties={"gb": {"v": 1}}), "non_numeric_property", "properties.gb"),
            (event("t1", code="storage_gb", properties={"gb": "NaN"}), "non_numeric_property", "properties.gb"),
            (event("t1", code="storage_gb", properties={"gb": "0.0000000000001"}), "non_numeric_property", "properties.gb"),
            (event("t1", timestamp="2026-03-10"), "invalid", "timestamp"),
            (event("t1", timestamp="2026-03-10T12:00:00"), "invalid", "timestamp"),
            (event("t1", timestamp=1700000000), "invalid", "timestamp"),
            (event("t1", properties=[1, 2]), "invalid", "properties"),
            (event("", ), "invalid", "transaction_id"),
            (event("t1", customer=None), "invalid", "customer"),
            (event("t1", code=None), "invalid", "code"),
            (event("t1", customer=123), "invalid", "customer"),
        ],
    )
    def test_rejections_are_400_with_reason_and_dead_lettered(self, usage_api, api_calls, body, code, field):
        response = post(usage_api, body)
        assert response.status_code == 400, response.content
        error = response.json()["error"]
        assert error["code"] == code
        assert field in error["fields"]
        assert error["message"]
        letter = DeadLetterEvent.objects.get()
        assert letter.reason == code
        assert json.loads(letter.raw_body) == json.loads(json.dumps(body))
        assert not UsageEvent.objects.exists()

    def test_timestamp_more_than_five_minutes_ahead_is_rejected(self, usage_api, make_metric, make_subscription):
        metric = make_metric("api_calls")
        make_subscription(metric, customer=CustomerFactory(external_id="acme"), start_date=date(2026, 1, 1))
        now = timezone.now()
        ok = post(usage_api, event("t-ok", timestamp=(now + timedelta(minutes=4)).isoformat()))
        assert ok.status_code == 202
        ahead = post(usage_api, event("t-ahead", timestamp=(now + timedelta(minutes=6)).isoformat()))
        assert ahead.status_code == 400
        assert ahead.json()["error"]["code"] == "timestamp_in_future"
        assert DeadLetterEvent.objects.get().transaction_id == "t-ahead"

    @pytest.mark.parametrize("raw", ['{"transaction_id": "t1", ', "[1, 2]", '"just a string"'])
    def test_malformed_body_is_400_and_kept_verbatim(self, usage_api, api_calls, raw):
        response = post(usage_api, raw)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "malformed_body"
        assert DeadLetterEvent.objects.get().raw_body == raw

    def test_subscription_of_another_customer(self, usage_api, api_calls):
        CustomerFactory(external_id="other")
        response = post(usage_api, event("t1", customer="other", subscription="sub_acme"))
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "subscription_customer_mismatch"

    def test_event_outside_explicit_subscription_dates(self, usage_api, api_calls):
        response = post(usage_api, event("t1", customer=None, subscription="sub_acme", timestamp="2025-12-31T23:00:00Z"))
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "outside_subscription_period"

    def test_customer_resolution_none_or_ambiguous(self, usage_api, make_metric, make_subscription):
        calls = make_metric("api_calls")
        other = make_metric("other_metric")
        customer = CustomerFactory(external_id="acme")
        first = make_subscription(other, customer=customer)
        none = post(usage_api, event("t1"))
        assert none.status_code == 400 and none.json()["error"]["code"] == "no_matching_subscription"
        ChargeFactory(plan_version=first.plan_version, billable_metric=calls)
        assert post(usage_api, event("t2")).status_code == 202
        make_subscription(calls, customer=customer)
        ambiguous = post(usage_api, event("t3"))
        assert ambiguous.status_code == 400 and ambiguous.json()["error"]["code"] == "ambiguous_subscription"
        assert ambiguous.json()["error"]["fields"] == {"subscription": ["ambiguous"]}

    def test_customer_resolution_skips_ended_and_not_yet_started(self, usage_api, make_metric, make_subscription):
        calls = make_metric("api_calls")
        customer = CustomerFactory(external_id="acme")
        make_subscription(calls, customer=customer, start_date=date(2025, 1, 1), end_date=date(2026, 3, 1))
        current = make_subscription(calls, customer=customer, start_date=date(2026, 3, 1))
        make_subscription(calls, customer=customer, start_date=date(2026, 4, 1))
        make_subscription(calls, customer=customer, start_date=date(2026, 1, 1), status="canceled")
        assert post(usage_api, event("t1")).status_code == 202
        assert UsageEvent.objects.get().subscription_id == current.id

    def test_auth_and_scope(self, anon_api, reader_api, api_calls):
        assert post(anon_api, event("t1")).status_code == 401
        assert post(reader_api, event("t1")).status_code == 403
        assert not UsageEvent.objects.exists()


@pytest.mark.django_db
class TestLateEvents:
    def test_event_in_an_invoiced_period_is_accepted_and_flagged_late(self, usage_api, api_calls):
        api_calls.usage_billed_through = date(2026, 3, 1)
        api_calls.save(update_fields=["usage_billed_through"])
        assert post(usage_api, event("late", timestamp="2026-02-28T23:59:59Z")).status_code == 202
        assert post(usage_api, event("on-time", timestamp="2026-03-01T00:00:00Z")).status_code == 202
        flags = dict(UsageEvent.objects.values_list("transaction_id", "is_late"))
        assert flags == {"late": True, "on-time": False}

    def test_lateness_uses_the_customer_local_date(self, usage_api, make_metric, make_subscription):
        metric = make_metric("api_calls")
        sub = make_subscription(metric, customer=CustomerFactory(external_id="acme", timezone="Pacific/Auckland"),
                                usage_billed_through=date(2026, 3, 1))
        # 2026-02-28T11:30Z is 2026-03-01 00:30 in Auckland (UTC+13): not late
        assert post(usage_api, event("a", timestamp="2026-02-28T11:30:00Z")).status_code == 202
        # 2026-02-28T10:30Z is 2026-02-28 23:30 in Auckland: late
        assert post(usage_api, event("b", timestamp="2026-02-28T10:30:00Z")).status_code == 202
        assert dict(UsageEvent.objects.filter(subscription=sub).values_list("transaction_id", "is_late")) == {
            "a": False, "b": True}


@pytest.mark.django_db
class TestBatch:
    def test_mixed_good_bad_duplicate_and_conflict(self, usage_api, api_calls):
        assert post(usage_api, event("seen")).status_code == 202
        body = {"events": [
            event("b0"),
            event("b1", customer="ghost"),
            event("seen"),  # already stored: duplicate
            event("b3", code="storage_gb", properties={"gb": "2.5"}),
            event("b0"),  # repeated inside the batch, same payload: duplicate
            event("b3", code="storage_gb", properties={"gb": "9"}),  # repeated, other payload: conflict
            "not an object",
            event("seen", timestamp="2026-03-11T00:00:00Z"),  # conflict with the stored one
            event("b8", code="storage_gb", properties={"gb": "x"}),
        ]}
        response = post(usage_api, body, BATCH_URL)
        assert response.status_code == 200
        data = response.json()
        assert data["accepted"] == 2
        assert data["duplicates"] == 2
        rejected = {r["index"]: (r["transaction_id"], r["error"]["code"]) for r in data["rejected"]}
        assert rejected == {
            1: ("b1", "unknown_customer"),
            5: ("b3", "transaction_id_conflict"),
            6: (None, "malformed_body"),
            7: ("seen", "transaction_id_conflict"),
            8: ("b8", "non_numeric_property"),
        }
        assert set(data["rejected"][0]["error"]) == {"code", "message", "fields"}
        assert sorted(UsageEvent.objects.values_list("transaction_id", flat=True)) == ["b0", "b3", "seen"]
        assert UsageEvent.objects.get(transaction_id="b3").value == Decimal("2.5")
        letters = DeadLetterEvent.objects.order_by("batch_index")
        assert [(d.batch_index, d.reason) for d in letters] == [
            (1, "unknown_customer"), (5, "transaction_id_conflict"), (6, "malformed_body"),
            (7, "transaction_id_conflict"), (8, "non_numeric_property")]
        assert all(d.source == "batch" for d in letters)
        assert json.loads(letters[0].raw_body) == event("b1", customer="ghost")

    def test_batch_is_set_based(self, usage_api, api_calls, django_assert_max_num_queries):
        events = [event(f"e{i}", code="storage_gb", properties={"gb": i}) for i in range(500)]
        # auth + lookup + partition ensure + insert (+ savepoint in the test transaction)
        with django_assert_max_num_queries(8):
            response = post(usage_api, {"events": events}, BATCH_URL)
        assert response.json() == {"accepted": 500, "duplicates": 0, "rejected": []}
        assert UsageEvent.objects.count() == 500
        again = post(usage_api, {"events": events}, BATCH_URL).json()
        assert again == {"accepted": 0, "duplicates": 500, "rejected": []}

    def test_limits_and_malformed(self, usage_api, api_calls):
        too_many = post(usage_api, {"events": [event(f"e{i}") for i in range(1001)]}, BATCH_URL)
        assert too_many.status_code == 400
        assert too_many.json()["error"]["code"] == "batch_too_large"
        not_a_list = post(usage_api, {"events": "nope"}, BATCH_URL)
        assert not_a_list.status_code == 400
        assert not_a_list.json()["error"]["code"] == "malformed_body"
        broken = post(usage_api, '{"events": [', BATCH_URL)
        assert broken.status_code == 400
        assert DeadLetterEvent.objects.count() == 3
        assert not UsageEvent.objects.exists()
        empty = post(usage_api, {"events": []}, BATCH_URL)
        assert empty.json() == {"accepted": 0, "duplicates": 0, "rejected": []}

    def test_scope(self, reader_api, api_calls):
        assert post(reader_api, {"events": [event("x")]}, BATCH_URL).status_code == 403
