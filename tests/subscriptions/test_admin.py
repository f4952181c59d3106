from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from subscriptions.models import ProrationItem
from tests.catalog.factories import PlanVersionFactory
from tests.subscriptions.factories import SubscriptionFactory

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/subscriptions/subscription/"


@pytest.fixture
def staff_client(client):
    client.force_login(User.objects.create_superuser("boss", "boss@example.com", "pw"))
    return client


def test_changelist_and_timeline(staff_client):
    sub = SubscriptionFactory(start_date=date(2026, 1, 1))
    assert staff_client.get(CHANGELIST).status_code == 200
    page = staff_client.get(f"{CHANGELIST}{sub.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Timeline" in html and "2026-01-01" in html and "100.00 USD" in html


def test_change_plan_action_with_form_page(staff_client):
    sub = SubscriptionFactory(start_date=date(2026, 1, 1))
    PlanVersionFactory(plan__code="premium", amount=Decimal("300"))
    form = staff_client.post(CHANGELIST, {"action": "change_plan", "_selected_action": [sub.pk]})
    assert form.status_code == 200 and b"Change plan" in form.content
    done = staff_client.post(CHANGELIST, {"action": "change_plan", "_selected_action": [sub.pk], "apply": "1",
                                          "plan": "premium", "effective": "", "date": ""}, follow=True)
    assert done.status_code == 200
    sub.refresh_from_db()
    assert sub.plan_version.plan.code == "premium"
    if timezone.now().day > 1:
        assert ProrationItem.objects.filter(subscription=sub).count() == 2


def test_cancel_action_reports_errors_per_row(staff_client):
    sub = SubscriptionFactory(start_date=date(2026, 1, 1))
    payload = {"action": "cancel", "_selected_action": [sub.pk], "apply": "1", "at": "period_end", "date": ""}
    staff_client.post(CHANGELIST, payload, follow=True)
    sub.refresh_from_db()
    assert sub.cancel_at_period_end is True
    again = staff_client.post(CHANGELIST, payload, follow=True)
    assert b"scheduled to cancel" in again.content
    assert staff_client.post(f"{CHANGELIST}{sub.pk}/delete/").status_code == 403
