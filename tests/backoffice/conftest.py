"""Back-office fixtures: finance users made by `create_finance_user`, and a small book of invoices
built through the public API (the World helper of the invoicing tests)."""

from __future__ import annotations

import os
from datetime import date

import pytest
from django.core.management import call_command
from django.test import Client

from tests.invoicing.conftest import World

PASSWORD = "correct horse battery"

# The browser tests' live server listens on 127.0.0.1 (a port the OS picks), never on a public address.
os.environ.setdefault("DJANGO_LIVE_TEST_SERVER_ADDRESS", "127.0.0.1")


@pytest.fixture(autouse=True)
def _fresh_partition_cache():
    from usage.partitioning import forget_known_partitions

    forget_known_partitions()
    yield
    forget_known_partitions()


def _user(name: str, role: str):
    from django.contrib.auth import get_user_model

    call_command("create_finance_user", name, "--role", role, "--password", PASSWORD)
    return get_user_model().objects.get(username=name)


@pytest.fixture
def finance_admin(db):
    return _user("fin-admin", "admin")


@pytest.fixture
def finance_viewer(db):
    return _user("fin-viewer", "viewer")


@pytest.fixture
def admin_client_bo(finance_admin) -> Client:
    client = Client(enforce_csrf_checks=False)
    client.force_login(finance_admin)
    return client


@pytest.fixture
def viewer_client(finance_viewer) -> Client:
    client = Client()
    client.force_login(finance_viewer)
    return client


@pytest.fixture
def world(billing_api, admin_api, usage_api) -> World:
    return World(billing_api, admin_api, usage_api)


def at(month: int, day: int, hour: int = 12) -> str:
    return f"2026-{month:02d}-{day:02d}T{hour:02d}:00:00Z"


@pytest.fixture
def books(world):
    """Acme (USD, net 14): 10 API calls in January at $1.00 plus a $20 base fee billed in arrears → a
    draft of $30.00 for January, finalized today as INV-2026-000001 (issue date = finalize date, due
    14 days later). Globex (JPY, net 30): 3 calls at ¥500 → ¥1,500, finalized today as INV-2026-000002."""
    world.metric("calls")
    world.plan("metered", pay_in_advance=False, amount="20.00",
               charges=[{"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "1.00"}}])
    world.plan("metered_jpy", currency="JPY", pay_in_advance=False,
               charges=[{"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "500"}}])
    world.customer("acme", net_terms_days=14, billing_email="ap@acme.test", country="US", timezone="America/New_York")
    world.customer("globex", currency="JPY", net_terms_days=30, country="JP", timezone="UTC")  # issued on the server's date
    world.subscription("acme-main", customer="acme", plan="metered", start_date=date(2026, 1, 1))
    world.subscription("globex-main", customer="globex", plan="metered_jpy", start_date=date(2026, 1, 1))
    world.events("calls", [at(1, 2, h) for h in range(10)], customer="acme")
    world.events("calls", [at(1, 3, h) for h in range(3)], customer="globex")
    world.run(date(2026, 2, 1), finalize=False)
    ids = {}
    for ext in ("acme-main", "globex-main"):
        (invoice,) = world.invoices(subscription=ext)
        world.ok(world.billing.post(f"/api/v1/invoices/{invoice['id']}/finalize/"))
        ids[ext] = invoice["id"]
    return ids
