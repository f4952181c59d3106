"""Issue 10 items 5 and 12: DEBUG is off unless asked for; a database outage answers 503 in the
error shape (a real outage: the connection points at a port nobody listens on)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the with-block ends


@pytest.fixture
def database_down(transactional_db):
    saved = connection.settings_dict["PORT"], connection.settings_dict["HOST"]
    connection.close()
    connection.settings_dict["HOST"], connection.settings_dict["PORT"] = "127.0.0.1", _closed_port()
    yield
    connection.close()
    connection.settings_dict["PORT"], connection.settings_dict["HOST"] = saved


def test_api_answers_503_in_the_error_shape_when_the_database_is_down(database_down, client):
    response = client.get("/api/v1/customers/", HTTP_AUTHORIZATION="Bearer ll_abcd_whatever")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable"
    assert response["Retry-After"] == "5"


def test_pages_and_health_check_answer_503_when_the_database_is_down(database_down, client):
    assert client.get("/healthz").status_code == 503
    response = client.post("/admin/login/", {"username": "someone", "password": "pw"})
    assert response.status_code == 503 and response["Retry-After"] == "5"


def test_stale_connections_are_health_checked():
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True


@pytest.mark.parametrize("entry", [
    "import billing_site.wsgi",
    "import billing_site.celery",
    "import sys; sys.argv = ['manage.py', 'check']; import manage; manage.main()",
])
def test_debug_is_off_by_default_for_wsgi_celery_and_manage(entry):
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DJANGO_DEBUG")}
    code = f"{entry}\nfrom django.conf import settings\nprint('DEBUG=' + str(settings.DEBUG))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert "DEBUG=False" in result.stdout, result.stderr[-2000:]
