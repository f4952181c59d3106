"""The page-only middleware: sessions, login, messages, htmx and the history request context run for the
browser pages and are skipped for the Bearer-key API (billing_site/page_middleware.py)."""

import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from simple_history.models import HistoricalRecords

from billing_site import page_middleware

LAYERS = [page_middleware.SessionMiddleware, page_middleware.AuthenticationMiddleware,
          page_middleware.MessageMiddleware, page_middleware.HistoryRequestMiddleware,
          page_middleware.HtmxMiddleware]


def _chain(seen: dict):
    def view(request):
        seen.update(session=hasattr(request, "session"), user=hasattr(request, "user"),
                    messages=hasattr(request, "_messages"), htmx=hasattr(request, "htmx"),
                    history=getattr(HistoricalRecords.context, "request", None) is request)
        return HttpResponse("ok")

    handler = view
    for layer in reversed(LAYERS):
        handler = layer(handler)
    return handler


@pytest.mark.parametrize("path", ["/", "/admin/", "/invoices/"])
def test_pages_get_every_layer(path):
    seen = {}
    response = _chain(seen)(RequestFactory().get(path))
    assert response.status_code == 200
    assert seen == {"session": True, "user": True, "messages": True, "htmx": True, "history": True}
    assert getattr(HistoricalRecords.context, "request", None) is None  # cleared after the request


@pytest.mark.parametrize("path", ["/api/v1/events/", "/api/v1/invoices/", "/api/v1/docs/"])
def test_the_api_skips_them(path):
    seen = {}
    assert _chain(seen)(RequestFactory().post(path)).status_code == 200
    assert seen == {"session": False, "user": False, "messages": False, "htmx": False, "history": False}


@pytest.mark.django_db
def test_a_browser_session_neither_authenticates_nor_follows_an_api_call(client, django_user_model):
    user = django_user_model.objects.create_superuser("ops", "ops@example.com", "pw-123456789")
    client.force_login(user)
    response = client.get("/api/v1/invoices/")
    assert response.status_code == 401
    assert "sessionid" not in response.cookies and "csrftoken" not in response.cookies
    assert client.get("/admin/").status_code == 200  # the same session still serves the pages
