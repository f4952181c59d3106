"""The platform itself: schema and docs, error shape for unknown URLs, finance groups, the real broker."""

import uuid

import pytest
from django.contrib.auth.models import Group

pytestmark = pytest.mark.django_db


def test_schema_and_docs_are_served(anon_api):
    schema = anon_api.get("/api/v1/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/customers/" in schema.content
    assert anon_api.get("/api/v1/docs/").status_code == 200


def test_unknown_api_url_is_json_404(client):
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_finance_groups_exist_with_expected_permissions():
    viewer = Group.objects.get(name="finance-viewer")
    admin = Group.objects.get(name="finance-admin")
    viewer_codes = set(viewer.permissions.values_list("codename", flat=True))
    admin_codes = set(admin.permissions.values_list("codename", flat=True))
    assert "view_customer" in viewer_codes
    assert all(code.startswith("view_") for code in viewer_codes)
    assert {"add_customer", "change_customer", "view_customer"} <= admin_codes
    assert not any(code.startswith("delete_") for code in admin_codes)


def test_viewer_staff_can_read_admin_but_not_change(client, django_user_model):
    from customers.models import Customer

    customer = Customer.objects.create(external_id="c1", name="C1", currency="USD")
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="finance-viewer"))
    client.force_login(user)
    page = client.get(f"/admin/customers/customer/{customer.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert client.post(f"/admin/customers/customer/{customer.pk}/change/", {"name": "hacked"}).status_code == 403


def test_celery_round_trip_through_real_redis_broker(settings):
    """A task travels through Redis to a real worker thread and its result comes back."""
    from celery.contrib.testing.worker import start_worker

    from billing_site.celery import app, ping

    app.conf.task_always_eager = False
    try:
        with start_worker(app, perform_ping_check=False, pool="solo", loglevel="WARNING"):
            token = uuid.uuid4().hex
            assert ping.delay(token).get(timeout=20) == f"pong:{token}"
    finally:
        app.conf.task_always_eager = True
