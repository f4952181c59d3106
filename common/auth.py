"""Production refuses the demo's credentials (issue 10): the demo data set creates `admin` and
`viewer` with a published password, and a production database seeded by mistake, or a password
copied from the README, must not open the back office."""

from __future__ import annotations

import os

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ValidationError

DEMO_PASSWORD_DEFAULT = "ledgerline-demo"


def demo_passwords() -> set[str]:
    return {DEMO_PASSWORD_DEFAULT, os.environ.get("DEMO_ADMIN_PASSWORD") or DEMO_PASSWORD_DEFAULT}


class RefuseDemoPasswordBackend(ModelBackend):
    """Django's model backend, except that the demo password never authenticates anyone."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if password in demo_passwords():
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class NotTheDemoPasswordValidator:
    def validate(self, password, user=None):
        if password in demo_passwords():
            raise ValidationError("This is the demo's published password; choose another.", code="demo_password")

    def get_help_text(self):
        return "Your password cannot be the demo's password."
