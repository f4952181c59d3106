"""Admin pages: endpoints (secret shown once on creation) and the deliveries log with a retry action.
A finance viewer sees both and can change nothing."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(django_user_model):
    def make(role):
        user = django_user_model.objects.create_user(f"{role}-user", password="pw", is_staff=True)
        user.groups.add(Group.objects.get(name=f"finance-{role}"))
        return user

    return make


def test_admin_creates_an_endpoint_and_sees_the_secret_once(client, staff):
    client.force_login(staff("admin"))
    response = client.post(reverse("admin:webhooks_webhookendpoint_add"),
                           {"url": "https://hooks.example.com/x", "events": '["invoice.finalized"]',
                            "description": "ERP", "enabled": "on"}, follow=True)
    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.events == ["invoice.finalized"]
    assert endpoint.secret in response.content.decode()
    change_page = client.get(reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk])).content.decode()
    assert endpoint.secret not in change_page and endpoint.secret[:10] in change_page


def test_admin_form_refuses_unsafe_urls_and_unknown_types(client, staff):
    client.force_login(staff("admin"))
    response = client.post(reverse("admin:webhooks_webhookendpoint_add"),
                           {"url": "http://169.254.169.254/", "events": '["invoice.exploded"]', "enabled": "on"})
    assert response.status_code == 200
    assert "link-local" in response.content.decode() and "unknown event types" in response.content.decode()
    assert WebhookEndpoint.objects.count() == 0


def test_retry_action_for_admins_not_for_viewers(client, staff, world, receiver):
    from webhooks.services import webhook_endpoint_create

    webhook_endpoint_create(url=receiver.url, events=["subscription.created"])
    world.subscription("sub-1")
    delivery = WebhookDelivery.objects.get()
    changelist = reverse("admin:webhooks_webhookdelivery_changelist")

    client.force_login(staff("viewer"))
    page = client.get(changelist)
    assert page.status_code == 200 and "retry_now" not in page.content.decode()
    refused = client.post(changelist, {"action": "retry_now", "_selected_action": [delivery.pk]})
    assert WebhookAttempt.objects.count() == 0 and receiver.requests == []
    assert refused.status_code in (200, 302, 403)
    endpoint_change = client.post(reverse("admin:webhooks_webhookendpoint_change", args=[delivery.endpoint_id]),
                                  {"url": "https://evil.example.com/", "events": "[]", "enabled": "on"})
    assert endpoint_change.status_code == 403
    assert WebhookEndpoint.objects.get().url == receiver.url

    client.force_login(staff("admin"))
    assert "retry_now" in client.get(changelist).content.decode()
    client.post(changelist, {"action": "retry_now", "_selected_action": [delivery.pk]})
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and WebhookAttempt.objects.get().manual is True
    assert client.get(reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk])).status_code == 200
