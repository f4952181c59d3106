import pytest

from customers.models import Customer

pytestmark = pytest.mark.django_db

ACME = {
    "external_id": "acme",
    "name": "Acme Corp",
    "currency": "EUR",
    "email": "ops@acme.test",
    "billing_email": "ap@acme.test",
    "timezone": "Europe/Berlin",
    "country": "DE",
    "collection_method": "charge_automatically",
    "net_terms_days": 14,
    "metadata": {"segment": "enterprise"},
}


def test_create_then_read_customer(billing_api):
    created = billing_api.post("/api/v1/customers/", ACME, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["external_id"] == "acme"

    fetched = billing_api.get("/api/v1/customers/acme/")
    assert fetched.status_code == 200
    body = fetched.json()
    assert (body["currency"], body["timezone"], body["country"]) == ("EUR", "Europe/Berlin", "DE")
    assert body["collection_method"] == "charge_automatically"
    assert body["net_terms_days"] == 14
    assert body["metadata"] == {"segment": "enterprise"}


def test_defaults_applied(billing_api):
    response = billing_api.post("/api/v1/customers/", {"external_id": "c1", "name": "C1", "currency": "usd"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert (body["currency"], body["timezone"], body["collection_method"], body["net_terms_days"]) == (
        "USD", "UTC", "send_invoice", 30)


def test_duplicate_external_id_is_409(billing_api):
    assert billing_api.post("/api/v1/customers/", ACME, format="json").status_code == 201
    again = billing_api.post("/api/v1/customers/", ACME, format="json")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "duplicate_external_id"
    assert "external_id" in again.json()["error"]["fields"]
    assert Customer.objects.filter(external_id="acme").count() == 1


@pytest.mark.parametrize(
    "field,value",
    [("currency", "EURO"), ("currency", "ABC"), ("timezone", "Mars/Olympus"), ("country", "XX"),
     ("collection_method", "barter"), ("net_terms_days", -1), ("email", "not-an-email"), ("metadata", [1, 2])],
)
def test_invalid_field_gives_400_naming_it(billing_api, field, value):
    response = billing_api.post("/api/v1/customers/", {**ACME, field: value}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["fields"]
    assert not Customer.objects.exists()


@pytest.mark.parametrize("missing", ["external_id", "name", "currency"])
def test_required_fields(billing_api, missing):
    body = {k: v for k, v in ACME.items() if k != missing}
    response = billing_api.post("/api/v1/customers/", body, format="json")
    assert response.status_code == 400
    assert missing in response.json()["error"]["fields"]


def test_malformed_json_is_400(billing_api):
    response = billing_api.post("/api/v1/customers/", data='{"external_id": "x",', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_body"


def test_patch_updates_and_records_history(billing_api):
    billing_api.post("/api/v1/customers/", ACME, format="json")
    response = billing_api.patch("/api/v1/customers/acme/", {"name": "Acme GmbH", "net_terms_days": 45}, format="json")
    assert response.status_code == 200
    assert response.json()["name"] == "Acme GmbH"
    customer = Customer.objects.get(external_id="acme")
    assert customer.net_terms_days == 45
    history = list(customer.history.order_by("history_date").values_list("history_type", "name"))
    assert history == [("+", "Acme Corp"), ("~", "Acme GmbH")]


def test_patch_rejects_bad_value_and_keeps_row(billing_api):
    billing_api.post("/api/v1/customers/", ACME, format="json")
    response = billing_api.patch("/api/v1/customers/acme/", {"timezone": "Nowhere/Land"}, format="json")
    assert response.status_code == 400
    assert "timezone" in response.json()["error"]["fields"]
    assert Customer.objects.get(external_id="acme").timezone == "Europe/Berlin"


def test_external_id_cannot_be_patched(billing_api):
    billing_api.post("/api/v1/customers/", ACME, format="json")
    billing_api.patch("/api/v1/customers/acme/", {"external_id": "other"}, format="json")
    assert Customer.objects.filter(external_id="acme").exists()


def test_unknown_customer_is_404(billing_api):
    response = billing_api.get("/api/v1/customers/nope/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_list_paginates(billing_api):
    for i in range(3):
        billing_api.post("/api/v1/customers/", {"external_id": f"c{i}", "name": f"C{i}", "currency": "USD"}, format="json")
    response = billing_api.get("/api/v1/customers/?page_size=2")
    body = response.json()
    assert [c["external_id"] for c in body["results"]] == ["c0", "c1"]
    assert body["next"] and body["count"] == 3
