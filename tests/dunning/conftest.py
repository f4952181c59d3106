"""Dunning tests run against the same local Stripe sandbox as the payments tests (one subprocess
per session, started by tests/payments/conftest.py's fixture)."""

from tests.payments.conftest import _stripe_settings, stripe_sandbox  # noqa: F401 - fixtures
