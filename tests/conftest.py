"""Shared fixtures: API clients with scoped keys against the real PostgreSQL test database."""

import pytest
from rest_framework.test import APIClient

from customers.services import api_key_create


def _client_with(scopes: list[str]) -> APIClient:
    _, raw = api_key_create(name="test-" + "-".join(scopes), scopes=scopes)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def api_client_factory(db):
    return _client_with


@pytest.fixture
def admin_api(db) -> APIClient:
    return _client_with(["admin"])


@pytest.fixture
def billing_api(db) -> APIClient:
    return _client_with(["billing:read", "billing:write"])


@pytest.fixture
def reader_api(db) -> APIClient:
    return _client_with(["billing:read"])


@pytest.fixture
def usage_api(db) -> APIClient:
    return _client_with(["usage:write"])


@pytest.fixture
def anon_api() -> APIClient:
    return APIClient()


@pytest.fixture(autouse=True)
def _fresh_api_key_cache():
    """Each test starts with an empty per-process API key cache (keys live in the rolled-back test transaction)."""
    from customers.services import _key_cache_clear

    _key_cache_clear()
    yield
    _key_cache_clear()


@pytest.fixture(scope="module")
def demo_data(django_db_setup, django_db_blocker):
    """The demo data set (every admin and API resource has rows), loaded once per module and flushed after."""
    from datetime import date

    from django.core.management import call_command

    from demo.data import seed_demo

    with django_db_blocker.unblock():
        seed_demo(today=date(2026, 6, 15))
    yield
    with django_db_blocker.unblock():
        call_command("flush", "--noinput", verbosity=0)  # its post_migrate re-creates permissions and groups
