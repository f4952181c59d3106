import pytest
from django.core.management import call_command
from django.utils import timezone

from customers.models import ApiKey
from customers.services import api_key_revoke

pytestmark = pytest.mark.django_db


def test_no_key_is_401_in_error_shape(anon_api):
    response = anon_api.get("/api/v1/customers/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Bearer"


def test_wrong_key_is_401(anon_api):
    anon_api.credentials(HTTP_AUTHORIZATION="Bearer ll_nope_nope")
    response = anon_api.get("/api/v1/customers/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_malformed_header_is_401(anon_api):
    anon_api.credentials(HTTP_AUTHORIZATION="Token abc def")
    assert anon_api.get("/api/v1/customers/").status_code == 401


def test_wrong_scope_is_403(usage_api):
    response = usage_api.get("/api/v1/customers/")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "permission_denied"
    assert "billing:read" in error["message"]


def test_read_scope_cannot_write(reader_api):
    assert reader_api.get("/api/v1/customers/").status_code == 200
    response = reader_api.post("/api/v1/customers/", {"external_id": "x", "name": "x", "currency": "USD"}, format="json")
    assert response.status_code == 403
    assert "billing:write" in response.json()["error"]["message"]


def test_admin_scope_grants_everything(admin_api):
    response = admin_api.post("/api/v1/customers/", {"external_id": "x", "name": "x", "currency": "USD"}, format="json")
    assert response.status_code == 201


def test_create_api_key_prints_key_alone_on_last_line_and_stores_hash(capsys, anon_api):
    call_command("create_api_key", "backend", "--scopes", "billing:read,usage:write")
    raw = capsys.readouterr().out.strip().splitlines()[-1]
    key = ApiKey.objects.get(name="backend")
    assert raw.startswith("ll_") and " " not in raw
    assert key.key_hash != raw and raw not in str(ApiKey.objects.values().get(pk=key.pk))
    assert key.scopes == ["billing:read", "usage:write"]

    anon_api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    before = timezone.now()
    assert anon_api.get("/api/v1/customers/").status_code == 200
    key.refresh_from_db()
    assert key.last_used_at >= before


def test_create_api_key_rejects_unknown_scope():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="Unknown"):
        call_command("create_api_key", "bad", "--scopes", "billing:everything")


def test_revoked_key_is_401(capsys, anon_api):
    call_command("create_api_key", "temp", "--scopes", "admin")
    raw = capsys.readouterr().out.strip().splitlines()[-1]
    anon_api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert anon_api.get("/api/v1/customers/").status_code == 200
    api_key_revoke(api_key=ApiKey.objects.get(name="temp"), actor="test")
    assert anon_api.get("/api/v1/customers/").status_code == 401


def test_revocation_reaches_other_processes_within_the_cache_window(capsys, anon_api, monkeypatch):
    """Another process's cache still holds the key; once the window passes, the revoked key is refused."""
    import customers.services as services

    call_command("create_api_key", "cached", "--scopes", "admin")
    raw = capsys.readouterr().out.strip().splitlines()[-1]
    anon_api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert anon_api.get("/api/v1/customers/").status_code == 200
    ApiKey.objects.filter(name="cached").update(revoked_at=timezone.now())  # as if revoked elsewhere
    assert anon_api.get("/api/v1/customers/").status_code == 200  # still cached here
    clock = services.time.monotonic() + services.KEY_CACHE_SECONDS + 1
    monkeypatch.setattr(services.time, "monotonic", lambda: clock)
    assert anon_api.get("/api/v1/customers/").status_code == 401
