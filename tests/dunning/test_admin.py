"""Dunning in the admin: the case list and timeline, the policy editor, attach-and-retry; viewers
read but change nothing."""

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from common.groups import FINANCE_ADMIN, FINANCE_VIEWER, sync_finance_groups
from dunning.models import DunningCase, DunningPolicy
from dunning.services import policy_default
from invoicing.models import Invoice
from tests.dunning.helpers import attach, finalized_invoice, subscribed_customer

pytestmark = pytest.mark.django_db


def _user(client, group):
    sync_finance_groups()
    user = User.objects.create_user(group, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client.force_login(user)
    return user


def _case(api, capture):
    cust, sub = subscribed_customer()
    attach(api, cust, "pm_card_chargeDeclinedStolenCard")
    invoice = finalized_invoice(api, cust, sub, capture)
    return DunningCase.objects.get(invoice_id=invoice["id"])


def test_cases_list_timeline_and_attach_and_retry(client, billing_api, django_capture_on_commit_callbacks):
    _user(client, FINANCE_ADMIN)
    case = _case(billing_api, django_capture_on_commit_callbacks)
    page = client.get(reverse("admin:dunning_dunningcase_changelist") + "?status__exact=action_required")
    body = page.content.decode()
    assert page.status_code == 200 and "action_required" in body and "100.0000" in body
    assert "email at" in body  # the next action: the day-3 reminder (the escalation ran at once)
    detail = client.get(reverse("admin:dunning_dunningcase_change", args=[case.pk])).content.decode()
    assert "dunning.case_opened" in detail and "stolen_card" in detail and "dunning.case_escalated" in detail
    url = reverse("admin:dunning_dunningcase_attach", args=[case.pk])
    assert client.get(url).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"stripe_payment_method": "pm_card_visa"})
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.status == "recovered" and Invoice.objects.get(pk=case.invoice_id).status == "paid"


def test_policy_editor_validates(client):
    _user(client, FINANCE_ADMIN)
    policy = policy_default()
    url = reverse("admin:dunning_dunningpolicy_change", args=[policy.pk])
    assert client.get(url).status_code == 200
    data = {"name": "Default", "is_default": "on", "currency": "", "segment": "", "active": "on",
            "retry_days": "[0, 2]", "max_retries": 4, "retry_window_days": 14, "email_days": "[0, 3]",
            "escalate_day": 14, "final_day": 21, "final_action": "keep_subscription", "network_cap_attempts": 15,
            "network_cap_days": 30, "smart_timing": "on", "default_retry_hour": 10, "payday_alignment": "on"}
    bad = client.post(url, data)
    assert bad.status_code == 200 and "retries start on day 1" in bad.content.decode()
    ok = client.post(url, {**data, "retry_days": "[2, 5]"})
    assert ok.status_code == 302
    policy.refresh_from_db()
    assert (policy.retry_days, policy.final_action) == ([2, 5], "keep_subscription")


def test_viewer_reads_but_changes_nothing(client, billing_api, django_capture_on_commit_callbacks):
    _user(client, FINANCE_VIEWER)
    case = _case(billing_api, django_capture_on_commit_callbacks)
    policy = policy_default()
    assert client.get(reverse("admin:dunning_dunningcase_changelist")).status_code == 200
    assert client.get(reverse("admin:dunning_dunningcase_change", args=[case.pk])).status_code == 200
    assert client.get(reverse("admin:dunning_dunningpolicy_changelist")).status_code == 200
    denied = client.post(reverse("admin:dunning_dunningpolicy_change", args=[policy.pk]), {"name": "Hacked"})
    assert denied.status_code == 403 and DunningPolicy.objects.get(pk=policy.pk).name == "Default"
    assert client.post(reverse("admin:dunning_dunningpolicy_add"), {"name": "x"}).status_code == 403
    assert client.post(reverse("admin:dunning_dunningcase_attach", args=[case.pk]),
                       {"stripe_payment_method": "pm_card_visa"}).status_code == 403
    client.post(reverse("admin:dunning_dunningcase_changelist"),
                {"action": "retry_now", "_selected_action": [case.pk]})
    case.refresh_from_db()
    assert case.status == "action_required" and case.steps.filter(kind="retry").count() == 0
