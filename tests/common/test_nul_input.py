"""NUL characters (which PostgreSQL text cannot hold) are refused with a 400, never a 500: found by
schemathesis in a query filter, a JSON body, and raw event bodies (which are still kept as dead letters)."""

import pytest

from customers.models import Customer
from usage.models import DeadLetterEvent

pytestmark = pytest.mark.django_db


def test_nul_in_query_filter_is_400_naming_the_parameter(billing_api):
    response = billing_api.get("/api/v1/subscriptions/?plan=a%00b")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"plan": ["Text may not contain NUL (\\u0000) characters."]}


def test_nul_in_path_is_400(billing_api):
    assert billing_api.get("/api/v1/customers/a%00b/").status_code == 400


def test_nul_inside_json_strings_is_400_and_nothing_changes(billing_api):
    Customer.objects.create(external_id="c1", name="C1", currency="USD")
    response = billing_api.patch("/api/v1/customers/c1/", data='{"metadata": {"k\\u0000": 1}, "name": "x\\u0000"}',
                                 content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_body"
    assert Customer.objects.get(external_id="c1").name == "C1"


@pytest.mark.parametrize("path", ["/api/v1/events/", "/api/v1/events/batch/"])
def test_raw_nul_event_body_is_400_and_kept_escaped_as_a_dead_letter(usage_api, path):
    response = usage_api.post(path, data="\x00{", content_type="application/json")
    assert response.status_code == 400
    letter = DeadLetterEvent.objects.get()
    assert letter.reason == "malformed_body" and letter.raw_body == "\\u0000{"


def test_nul_in_event_properties_is_400(usage_api):
    body = '{"transaction_id": "t1", "customer": "c", "code": "m", "timestamp": "2026-01-01T00:00:00Z", "properties": {"a": "\\u0000"}}'
    response = usage_api.post("/api/v1/events/", data=body, content_type="application/json")
    assert response.status_code == 400


def test_admin_search_with_nul_is_400(admin_client):
    assert admin_client.get("/admin/customers/customer/?q=%00").status_code == 400
