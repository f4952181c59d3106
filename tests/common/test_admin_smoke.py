"""Every back-office page renders over the demo data set: each admin's list, search, filters, add
form, and the change page of one row, for a superuser and for a read-only finance viewer."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import reverse

from common.groups import FINANCE_APPS

pytestmark = pytest.mark.django_db

MODEL_ADMINS = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


def _pages(model, model_admin):
    opts = model._meta
    base = f"admin:{opts.app_label}_{opts.model_name}"
    yield reverse(f"{base}_changelist")
    yield reverse(f"{base}_changelist") + "?q=a"
    obj = model_admin.get_queryset(_request()).order_by("pk").first()
    if obj is not None:
        yield reverse(f"{base}_change", args=[obj.pk])
        if hasattr(model_admin, "history_view"):
            yield reverse(f"{base}_history", args=[obj.pk])


def _request():
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    from django.contrib.auth import get_user_model

    request.user = get_user_model().objects.filter(is_superuser=True).first()
    return request


@pytest.mark.parametrize("model,model_admin", MODEL_ADMINS, ids=[m._meta.label for m, _ in MODEL_ADMINS])
def test_admin_pages_render_for_superuser_and_viewer(demo_data, client, django_user_model, model, model_admin):
    superuser = django_user_model.objects.get(username="admin")
    viewer = django_user_model.objects.create_user("smoke-viewer", password="pw", is_staff=True)
    viewer.groups.add(Group.objects.get(name="finance-viewer"))
    users = (superuser, viewer) if model._meta.app_label in FINANCE_APPS else (superuser,)
    for user in users:
        client.force_login(user)
        for url in _pages(model, model_admin):
            response = client.get(url)
            assert response.status_code in (200, 302), f"{user.username} {url} → {response.status_code}"
    client.force_login(superuser)
    add_url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add")
    assert client.get(add_url).status_code in (200, 302, 403)
