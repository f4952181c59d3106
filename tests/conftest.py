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

    from demo.data import seed_demo

    with django_db_blocker.unblock():
        seed_demo(today=date(2026, 6, 15))
    yield
    with django_db_blocker.unblock():
        _flush_keeping_sequences()


def _flush_keeping_sequences() -> None:
    """Empty every table like `flush`, but without restarting the id sequences: ids stay unique for
    the whole session, so idempotency keys derived from them (`payment_attempt:<id>`) never meet a
    key the session's Stripe sandbox has already seen with other parameters. post_migrate re-creates
    the permissions and finance groups, as flush does."""
    from django.core.management.color import no_style
    from django.core.management.sql import emit_post_migrate_signal
    from django.db import connection

    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    with connection.cursor() as cursor:
        for statement in connection.ops.sql_flush(no_style(), tables, reset_sequences=False, allow_cascade=True):
            cursor.execute(statement)
    emit_post_migrate_signal(verbosity=0, interactive=False, db=connection.alias)
