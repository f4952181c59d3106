"""Anomaly admin: finance admins dismiss through the action (the service), viewers are refused."""

from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from analytics.models import Anomaly
from common.models import AuditEvent
from tests.customers.factories import CustomerFactory
from tests.subscriptions.factories import SubscriptionFactory

pytestmark = pytest.mark.django_db


def _anomaly():
    sub = SubscriptionFactory(customer=CustomerFactory())
    return Anomaly.objects.create(customer=sub.customer, subscription=sub, date=date(2026, 1, 25), kind="spike",
                                  observed=Decimal(60), expected=Decimal(10), score=Decimal(50), method="m",
                                  detected_at=timezone.now())


def _user(django_user_model, name, group):
    user = django_user_model.objects.create_user(name, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


def test_admin_dismisses_viewer_refused(client, django_user_model):
    a = _anomaly()
    url = reverse("admin:analytics_anomaly_changelist")
    client.force_login(_user(django_user_model, "viewer", "finance-viewer"))
    assert client.get(url).status_code == 200
    client.post(url, {"action": "dismiss_selected", "_selected_action": [a.pk]})
    assert Anomaly.objects.get(pk=a.pk).status == "open"
    client.force_login(_user(django_user_model, "fin", "finance-admin"))
    assert client.get(reverse("admin:analytics_anomaly_change", args=[a.pk])).status_code == 200
    response = client.post(url, {"action": "dismiss_selected", "_selected_action": [a.pk]})
    assert response.status_code == 302
    a.refresh_from_db()
    assert (a.status, a.resolved_by) == ("dismissed", "user:fin")
    assert AuditEvent.objects.filter(action="anomaly.dismissed", object_id=str(a.pk)).count() == 1
