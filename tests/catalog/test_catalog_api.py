"""Billable metrics and plans over the API: round trips for every model, 400s naming the property."""

import pytest

from catalog.models import BillableMetric, Plan, PlanVersion
from common.models import AuditEvent

pytestmark = pytest.mark.django_db

METRICS = [
    {"code": "api_calls", "name": "API calls", "aggregation": "count"},
    {"code": "payments", "name": "Payment volume", "aggregation": "sum", "field": "amount"},
    {"code": "storage_gb", "name": "Storage", "aggregation": "max", "field": "gb"},
    {"code": "seats_seen", "name": "Active users", "aggregation": "unique_count", "field": "user_id"},
]

CHARGES = {
    "standard": {"billable_metric": "api_calls", "model": "standard", "properties": {"unit_amount": "0.004"}},
    "package": {"billable_metric": "api_calls", "model": "package",
                "properties": {"package_size": 1000, "amount": "5.00", "free_units": 100}},
    "graduated": {"billable_metric": "seats_seen", "model": "graduated", "properties": {"tiers": [
        {"up_to": 50, "unit_amount": "40", "flat_amount": "0"},
        {"up_to": None, "unit_amount": "35", "flat_amount": "10.00"}]}},
    "volume": {"billable_metric": "storage_gb", "model": "volume", "properties": {"tiers": [
        {"up_to": 100, "unit_amount": "0.25", "flat_amount": "0"},
        {"up_to": 1000, "unit_amount": "0.20", "flat_amount": "5"},
        {"up_to": None, "unit_amount": "0.000125", "flat_amount": "0"}]}},
    "percentage": {"billable_metric": "payments", "model": "percentage", "properties": {
        "rate": "2.9", "fixed_amount": "0.30", "free_units": 3, "min_per_transaction": "0.50",
        "max_per_transaction": "20"}},
}


@pytest.fixture
def metrics(billing_api):
    for body in METRICS:
        response = billing_api.post("/api/v1/billable_metrics/", body, format="json")
        assert response.status_code == 201, response.content
    return METRICS


def plan_body(**overrides):
    body = {"code": "pro", "name": "Pro", "currency": "USD", "interval": "month", "amount": "49.00",
            "pay_in_advance": True, "trial_days": 14, "minimum_commitment": "200.00",
            "charges": [CHARGES["standard"]]}
    body.update(overrides)
    return body


# --- billable metrics --------------------------------------------------------------------------

def test_metric_create_get_list(billing_api, metrics):
    response = billing_api.get("/api/v1/billable_metrics/payments/")
    assert response.status_code == 200
    body = response.json()
    assert (body["code"], body["aggregation"], body["field"]) == ("payments", "sum", "amount")
    listing = billing_api.get("/api/v1/billable_metrics/").json()
    assert [m["code"] for m in listing["results"]] == ["api_calls", "payments", "seats_seen", "storage_gb"]
    assert AuditEvent.objects.filter(action="billable_metric.created").count() == 4


def test_sum_metric_without_field_is_400(billing_api):
    response = billing_api.post("/api/v1/billable_metrics/", {"code": "vol", "name": "Vol", "aggregation": "sum"},
                                format="json")
    assert response.status_code == 400
    assert "field" in response.json()["error"]["fields"]
    assert not BillableMetric.objects.exists()


@pytest.mark.parametrize("body,field", [
    ({"code": "x", "name": "X", "aggregation": "median", "field": "v"}, "aggregation"),
    ({"code": "x", "name": "X", "aggregation": "count", "field": "v"}, "field"),
    ({"code": "has space", "name": "X", "aggregation": "count"}, "code"),
    ({"name": "X", "aggregation": "count"}, "code"),
])
def test_metric_invalid_is_400_naming_field(billing_api, body, field):
    response = billing_api.post("/api/v1/billable_metrics/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_duplicate_metric_is_409(billing_api, metrics):
    response = billing_api.post("/api/v1/billable_metrics/", METRICS[0], format="json")
    assert response.status_code == 409
    assert response.json()["error"]["fields"] == {"code": ["already exists"]}


def test_unknown_metric_is_404(billing_api):
    assert billing_api.get("/api/v1/billable_metrics/nope/").status_code == 404


def test_scopes(reader_api, usage_api, anon_api, billing_api, metrics):
    assert reader_api.get("/api/v1/plans/").status_code == 200
    assert reader_api.post("/api/v1/plans/", plan_body(), format="json").status_code == 403
    assert reader_api.post("/api/v1/billable_metrics/", {"code": "y", "name": "Y", "aggregation": "count"},
                           format="json").status_code == 403
    assert usage_api.get("/api/v1/billable_metrics/").status_code == 403
    assert anon_api.get("/api/v1/plans/").status_code == 401


# --- plans -------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", list(CHARGES))
def test_plan_round_trip_for_every_model(billing_api, metrics, model):
    created = billing_api.post("/api/v1/plans/", plan_body(charges=[CHARGES[model]]), format="json")
    assert created.status_code == 201, created.content
    fetched = billing_api.get("/api/v1/plans/pro/")
    assert fetched.status_code == 200
    body = fetched.json()
    assert body == created.json()
    assert {k: body[k] for k in ("code", "name", "currency", "interval", "amount", "pay_in_advance", "trial_days",
                                 "minimum_commitment", "version")} == {
        "code": "pro", "name": "Pro", "currency": "USD", "interval": "month", "amount": "49.00",
        "pay_in_advance": True, "trial_days": 14, "minimum_commitment": "200.00", "version": 1}
    [charge] = body["charges"]
    expected = CHARGES[model]
    assert (charge["billable_metric"], charge["model"]) == (expected["billable_metric"], model)
    assert charge["properties"] == {**_defaults(model), **expected["properties"]}


def _defaults(model):
    return {"standard": {}, "package": {}, "graduated": {}, "volume": {},
            "percentage": {"fixed_amount": "0", "free_units": 0}}[model]


def test_plan_defaults_and_number_normalization(billing_api, metrics):
    body = {"code": "basic", "name": "Basic", "currency": "jpy", "interval": "year", "charges": [
        {"billable_metric": "api_calls", "model": "graduated",
         "properties": {"tiers": [{"up_to": "10", "unit_amount": 3}, {"up_to": None, "unit_amount": 0.5}]}},
        {"billable_metric": "payments", "model": "percentage", "properties": {"rate": 1}},
    ]}
    response = billing_api.post("/api/v1/plans/", body, format="json")
    assert response.status_code == 201, response.content
    plan = response.json()
    assert (plan["currency"], plan["amount"], plan["pay_in_advance"], plan["trial_days"],
            plan["minimum_commitment"]) == ("JPY", "0", True, 0, None)
    assert plan["charges"][0]["properties"] == {"tiers": [
        {"up_to": 10, "unit_amount": "3", "flat_amount": "0"},
        {"up_to": None, "unit_amount": "0.5", "flat_amount": "0"}]}
    assert plan["charges"][1]["properties"] == {"rate": "1", "fixed_amount": "0", "free_units": 0}


def test_plan_with_all_models_keeps_charge_order(billing_api, metrics):
    response = billing_api.post("/api/v1/plans/", plan_body(charges=list(CHARGES.values())), format="json")
    assert response.status_code == 201, response.content
    assert [c["model"] for c in billing_api.get("/api/v1/plans/pro/").json()["charges"]] == list(CHARGES)
    version = PlanVersion.objects.get(plan__code="pro")
    assert version.charges.count() == 5


def test_plan_list(billing_api, metrics):
    for code in ("b", "a"):
        assert billing_api.post("/api/v1/plans/", plan_body(code=code), format="json").status_code == 201
    body = billing_api.get("/api/v1/plans/").json()
    assert [p["code"] for p in body["results"]] == ["a", "b"]
    assert body["results"][0]["charges"][0]["properties"] == {"unit_amount": "0.004"}


def test_duplicate_plan_is_409(billing_api, metrics):
    assert billing_api.post("/api/v1/plans/", plan_body(), format="json").status_code == 201
    response = billing_api.post("/api/v1/plans/", plan_body(), format="json")
    assert response.status_code == 409
    assert Plan.objects.count() == 1 and PlanVersion.objects.count() == 1


def test_unknown_plan_is_404(billing_api):
    assert billing_api.get("/api/v1/plans/nope/").status_code == 404


def _tiers(*tiers):
    return {"billable_metric": "api_calls", "model": "graduated", "properties": {"tiers": list(tiers)}}


BAD = [
    # (charges or overrides, the field the 400 must name)
    ({"charges": [{"billable_metric": "api_calls", "model": "bespoke", "properties": {}}]}, "charges[0].model"),
    ({"charges": [{"billable_metric": "nope", "model": "standard", "properties": {"unit_amount": "1"}}]},
     "charges[0].billable_metric"),
    ({"charges": [{"billable_metric": "api_calls", "model": "standard", "properties": {"unit_amount": "-1"}}]},
     "charges[0].properties.unit_amount"),
    ({"charges": [{"billable_metric": "api_calls", "model": "standard", "properties": {}}]},
     "charges[0].properties.unit_amount"),
    ({"charges": [{"billable_metric": "api_calls", "model": "standard", "properties": {"unit_amount": "abc"}}]},
     "charges[0].properties.unit_amount"),
    ({"charges": [{"billable_metric": "api_calls", "model": "standard",
                   "properties": {"unit_amount": "0.0000000000001"}}]}, "charges[0].properties.unit_amount"),
    ({"charges": [{"billable_metric": "api_calls", "model": "standard",
                   "properties": {"unit_amount": "1", "tiers": []}}]}, "charges[0].properties.tiers"),
    ({"charges": [{"billable_metric": "api_calls", "model": "standard",
                   "properties": {"unit_amount": "1", "currency": "EUR"}}]}, "charges[0].properties.currency"),
    ({"charges": [{"billable_metric": "api_calls", "model": "standard", "currency": "EUR",
                   "properties": {"unit_amount": "1"}}]}, "charges[0].currency"),
    ({"charges": [CHARGES["standard"], {"billable_metric": "api_calls", "model": "package",
                                        "properties": {"package_size": 0, "amount": "5"}}]},
     "charges[1].properties.package_size"),
    ({"charges": [{"billable_metric": "api_calls", "model": "package",
                   "properties": {"package_size": 2.5, "amount": "5"}}]}, "charges[0].properties.package_size"),
    ({"charges": [{"billable_metric": "api_calls", "model": "package",
                   "properties": {"package_size": 10, "amount": "5", "free_units": -1}}]},
     "charges[0].properties.free_units"),
    ({"charges": [_tiers({"up_to": 50, "unit_amount": "40"}, {"up_to": 40, "unit_amount": "35"},
                         {"up_to": None, "unit_amount": "1"})]}, "charges[0].properties.tiers[1].up_to"),
    ({"charges": [_tiers({"up_to": 50, "unit_amount": "40"}, {"up_to": 50, "unit_amount": "35"},
                         {"up_to": None, "unit_amount": "1"})]}, "charges[0].properties.tiers[1].up_to"),
    ({"charges": [_tiers({"up_to": 50, "unit_amount": "40"}, {"up_to": 100, "unit_amount": "35"})]},
     "charges[0].properties.tiers[1].up_to"),
    ({"charges": [_tiers({"up_to": None, "unit_amount": "40"}, {"up_to": None, "unit_amount": "35"})]},
     "charges[0].properties.tiers[0].up_to"),
    ({"charges": [_tiers({"up_to": 50, "unit_amount": "40"}, {"up_to": None, "unit_amount": "35",
                                                                "flat_amount": "-5"})]},
     "charges[0].properties.tiers[1].flat_amount"),
    ({"charges": [_tiers({"up_to": 50, "unit_amount": "40"}, {"up_to": None})]},
     "charges[0].properties.tiers[1].unit_amount"),
    ({"charges": [_tiers({"up_to": 50, "unit_amount": "40", "from_value": 1},
                         {"up_to": None, "unit_amount": "35", "from_value": 60})]},
     "charges[0].properties.tiers[1].from_value"),
    ({"charges": [_tiers()]}, "charges[0].properties.tiers"),
    ({"charges": [{"billable_metric": "api_calls", "model": "volume", "properties": {"tiers": "1-50"}}]},
     "charges[0].properties.tiers"),
    ({"charges": [{"billable_metric": "payments", "model": "percentage", "properties": {"rate": "101"}}]},
     "charges[0].properties.rate"),
    ({"charges": [{"billable_metric": "payments", "model": "percentage",
                   "properties": {"rate": "1", "min_per_transaction": "5", "max_per_transaction": "1"}}]},
     "charges[0].properties.max_per_transaction"),
    ({"charges": [{"billable_metric": "api_calls", "model": "percentage", "properties": {"rate": "1"}}]},
     "charges[0].billable_metric"),
    ({"charges": [{"billable_metric": "api_calls", "model": "standard", "properties": [1]}]},
     "charges[0].properties"),
    ({"amount": "-1"}, "amount"),
    ({"minimum_commitment": "200.001"}, "minimum_commitment"),
    ({"currency": "EURO"}, "currency"),
    ({"interval": "fortnight"}, "interval"),
    ({"trial_days": -3}, "trial_days"),
]


@pytest.mark.parametrize("overrides,field", BAD, ids=[f for _, f in BAD])
def test_invalid_plan_is_400_naming_the_property(billing_api, metrics, overrides, field):
    response = billing_api.post("/api/v1/plans/", plan_body(**overrides), format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["fields"], error
    assert not Plan.objects.exists()


def test_tiers_with_contiguous_from_values_are_accepted(billing_api, metrics):
    charge = _tiers({"from_value": 0, "up_to": 50, "unit_amount": "40"},
                    {"from_value": 51, "up_to": None, "unit_amount": "35"})
    response = billing_api.post("/api/v1/plans/", plan_body(charges=[charge]), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["charges"][0]["properties"]["tiers"][1] == {"up_to": None, "unit_amount": "35",
                                                                       "flat_amount": "0"}


def test_several_errors_are_reported_together(billing_api, metrics):
    charges = [_tiers({"up_to": 50, "unit_amount": "-40"}, {"up_to": 10, "unit_amount": "35"},
                      {"up_to": None, "unit_amount": "1"})]
    fields = billing_api.post("/api/v1/plans/", plan_body(charges=charges), format="json").json()["error"]["fields"]
    assert {"charges[0].properties.tiers[0].unit_amount", "charges[0].properties.tiers[1].up_to"} <= set(fields)


# --- PATCH and versions ------------------------------------------------------------------------

def test_patch_price_creates_new_version_and_old_version_stays(billing_api, metrics):
    billing_api.post("/api/v1/plans/", plan_body(), format="json")
    response = billing_api.patch("/api/v1/plans/pro/", {"amount": "59.00"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["version"], body["amount"], body["minimum_commitment"]) == (2, "59.00", "200.00")
    assert body["charges"] == billing_api.get("/api/v1/plans/pro/?version=1").json()["charges"]
    old = billing_api.get("/api/v1/plans/pro/?version=1").json()
    assert (old["version"], old["amount"]) == (1, "49.00")


def test_patch_charges_creates_version(billing_api, metrics):
    billing_api.post("/api/v1/plans/", plan_body(), format="json")
    new_charges = [CHARGES["graduated"]]
    body = billing_api.patch("/api/v1/plans/pro/", {"charges": new_charges}, format="json").json()
    assert body["version"] == 2
    assert [c["model"] for c in body["charges"]] == ["graduated"]
    assert billing_api.get("/api/v1/plans/pro/?version=1").json()["charges"][0]["model"] == "standard"


def test_patch_name_does_not_version(billing_api, metrics):
    billing_api.post("/api/v1/plans/", plan_body(), format="json")
    body = billing_api.patch("/api/v1/plans/pro/", {"name": "Pro 2026", "amount": "49"}, format="json").json()
    assert (body["name"], body["version"]) == ("Pro 2026", 1)
    assert PlanVersion.objects.count() == 1


def test_patch_bad_tier_is_400_and_keeps_version(billing_api, metrics):
    billing_api.post("/api/v1/plans/", plan_body(), format="json")
    response = billing_api.patch("/api/v1/plans/pro/", {"charges": [
        _tiers({"up_to": 5, "unit_amount": "1"})]}, format="json")
    assert response.status_code == 400
    assert "charges[0].properties.tiers[0].up_to" in response.json()["error"]["fields"]
    assert PlanVersion.objects.count() == 1


def test_patch_currency_is_409(billing_api, metrics):
    billing_api.post("/api/v1/plans/", plan_body(), format="json")
    response = billing_api.patch("/api/v1/plans/pro/", {"currency": "EUR"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "plan_currency_locked"


def test_unknown_version_is_404(billing_api, metrics):
    billing_api.post("/api/v1/plans/", plan_body(), format="json")
    assert billing_api.get("/api/v1/plans/pro/?version=9").status_code == 404
    assert billing_api.get("/api/v1/plans/pro/?version=x").status_code == 400
