"""Issue 10 item 13: production settings pass `check --deploy`, refuse the demo credentials and the
demo data set; customer metadata is size-limited."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from common.auth import DEMO_PASSWORD_DEFAULT

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_AUTH = dict(AUTHENTICATION_BACKENDS=["common.auth.RefuseDemoPasswordBackend"],
                       AUTH_PASSWORD_VALIDATORS=[{"NAME": "common.auth.NotTheDemoPasswordValidator"}])


def test_check_deploy_is_clean_with_production_settings():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "billing_site.settings.production",
           "DJANGO_SECRET_KEY": secrets.token_urlsafe(60)}
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.django_db
def test_production_refuses_to_log_in_with_the_demo_password(django_user_model):
    django_user_model.objects.create_user("admin", password=DEMO_PASSWORD_DEFAULT, is_staff=True, is_superuser=True)
    django_user_model.objects.create_user("real", password="a-real-password-42", is_staff=True)
    assert authenticate(username="admin", password=DEMO_PASSWORD_DEFAULT) is not None  # the demo settings
    with override_settings(**PRODUCTION_AUTH):
        assert authenticate(username="admin", password=DEMO_PASSWORD_DEFAULT) is None
        assert authenticate(username="real", password="a-real-password-42").username == "real"
        with pytest.raises(ValidationError, match="demo"):
            validate_password(DEMO_PASSWORD_DEFAULT)


@pytest.mark.django_db
def test_production_refuses_to_load_the_demo_users(django_user_model):
    with override_settings(DEMO_DATA_ALLOWED=False), pytest.raises(CommandError, match="not loaded"):
        call_command("seed_demo")
    assert not django_user_model.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("metadata,why", [
    ({f"k{i}": i for i in range(51)}, "at most 50"),
    ({"k" * 41: 1}, "at most 40 characters"),
    ({"notes": "x" * 9000}, "at most 8192"),
])
def test_customer_metadata_is_size_limited(billing_api, metadata, why):
    body = {"external_id": "big", "name": "Big", "currency": "USD", "metadata": metadata}
    response = billing_api.post("/api/v1/customers/", body, format="json")
    assert response.status_code == 400 and why in response.json()["error"]["fields"]["metadata"][0]
    ok = billing_api.post("/api/v1/customers/", {**body, "metadata": {"crm_id": "123"}}, format="json")
    assert ok.status_code == 201
    response = billing_api.patch("/api/v1/customers/big/", {"metadata": metadata}, format="json")
    assert response.status_code == 400 and "metadata" in response.json()["error"]["fields"]
