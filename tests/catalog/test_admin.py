"""The catalog admin: versions with their subscriptions, a new version through the service, price preview."""

import datetime

import pytest
from django.urls import reverse

from catalog.models import BillableMetric, Plan, PlanVersion
from catalog.selectors import plan_current_version
from catalog.services import plan_create
from subscriptions.models import Subscription
from tests.catalog.factories import BillableMetricFactory
from tests.customers.factories import CustomerFactory

pytestmark = pytest.mark.django_db

TIERS = {"tiers": [{"up_to": 50, "unit_amount": "40", "flat_amount": "0"},
                   {"up_to": None, "unit_amount": "35", "flat_amount": "0"}]}


@pytest.fixture
def plan():
    BillableMetricFactory(code="seats_seen", aggregation="unique_count", field="user_id")
    BillableMetricFactory(code="calls")
    return plan_create(code="team", name="Team", currency="USD", interval="month", amount="10",
                       minimum_commitment="3000", charges=[
                           {"billable_metric": "seats_seen", "model": "graduated", "properties": TIERS},
                           {"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "0.004"}}])


def _charge_post(plan_obj, charges, **fields):
    data = {"plan": plan_obj.pk, "customer": "", "amount": "12", "pay_in_advance": "on", "trial_days": "0",
            "minimum_commitment": "", "charges-TOTAL_FORMS": str(len(charges)), "charges-INITIAL_FORMS": "0",
            "charges-MIN_NUM_FORMS": "0", "charges-MAX_NUM_FORMS": "1000"}
    data.update(fields)
    for i, (metric, model, properties) in enumerate(charges):
        data.update({f"charges-{i}-billable_metric": BillableMetric.objects.get(code=metric).pk,
                     f"charges-{i}-model": model, f"charges-{i}-properties": properties,
                     f"charges-{i}-invoice_display_name": ""})
    return data


def test_plan_pages_show_versions_and_subscriptions(admin_client, plan):
    version = plan_current_version(plan)
    Subscription.objects.create(external_id="sub_admin", customer=CustomerFactory(), plan_version=version,
                                start_date=datetime.date(2026, 1, 1))
    assert admin_client.get(reverse("admin:catalog_plan_changelist")).status_code == 200
    page = admin_client.get(reverse("admin:catalog_plan_change", args=[plan.pk])).content.decode()
    assert "Price preview" in page and "v1" in page
    version_page = admin_client.get(reverse("admin:catalog_planversion_change", args=[version.pk])).content.decode()
    assert "sub_admin" in version_page
    assert "each tier prices its own units: 0 – 50: 40.00 per unit; above 50: 35.00 per unit" in version_page
    assert admin_client.get(reverse("admin:catalog_planversion_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:catalog_billablemetric_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:catalog_charge_changelist")).status_code == 200


def test_price_preview_rates_the_quantities(admin_client, plan):
    version = plan_current_version(plan)
    graduated, standard = version.charges.order_by("position")
    url = reverse("admin:catalog_planversion_preview", args=[version.pk])
    response = admin_client.get(url, {"seats": "2", f"q_{graduated.pk}": "60", f"q_{standard.pk}": "40000"})
    assert response.status_code == 200
    preview = response.context["preview"]
    assert [str(line["rated"].amount) for line in preview["lines"]] == ["2350.00", "160.00"]
    assert (str(preview["base"]), str(preview["subtotal"]), str(preview["true_up"]), str(preview["total"])) == (
        "20.00", "2530.00", "470.00", "3000.00")
    page = response.content.decode()
    assert "50 × 40.00 + 10 × 35.00" in page and "3000.00 USD" in page


def test_price_preview_reports_bad_input(admin_client, plan):
    version = plan_current_version(plan)
    charge = version.charges.order_by("position").first()
    response = admin_client.get(reverse("admin:catalog_planversion_preview", args=[version.pk]),
                                {"seats": "1", f"q_{charge.pk}": "lots"})
    assert response.status_code == 200
    assert response.context["preview"] is None and response.context["errors"]


def test_copy_form_is_prefilled(admin_client, plan):
    version = plan_current_version(plan)
    response = admin_client.get(reverse("admin:catalog_planversion_add") + f"?copy_from={version.pk}")
    assert response.status_code == 200
    page = response.content.decode()
    assert "&quot;up_to&quot;: 50" in page and "0.004" in page


def test_new_version_through_admin(admin_client, plan):
    data = _charge_post(plan, [("calls", "volume", '{"tiers": [{"up_to": 100, "unit_amount": "1"},'
                                                   ' {"up_to": null, "unit_amount": "0.5"}]}')])
    response = admin_client.post(reverse("admin:catalog_planversion_add"), data)
    assert response.status_code == 302, response.context and response.context["errors"]
    current = plan_current_version(plan)
    assert (current.version, current.amount, current.minimum_commitment) == (2, 12, None)
    assert [(c.model, c.properties) for c in current.charges.all()] == [
        ("volume", {"tiers": [{"up_to": 100, "unit_amount": "1", "flat_amount": "0"},
                              {"up_to": None, "unit_amount": "0.5", "flat_amount": "0"}]})]
    assert PlanVersion.objects.get(plan=plan, version=1).charges.count() == 2


def test_bad_tiers_in_admin_show_the_property(admin_client, plan):
    data = _charge_post(plan, [("calls", "graduated", '{"tiers": [{"up_to": 100, "unit_amount": "1"},'
                                                      ' {"up_to": 50, "unit_amount": "1"}]}')])
    response = admin_client.post(reverse("admin:catalog_planversion_add"), data)
    assert response.status_code == 200
    assert "tiers[1].up_to" in response.content.decode()
    assert PlanVersion.objects.filter(plan=plan).count() == 1


def test_invalid_json_in_admin(admin_client, plan):
    data = _charge_post(plan, [("calls", "standard", '{"unit_amount": ')])
    response = admin_client.post(reverse("admin:catalog_planversion_add"), data)
    assert response.status_code == 200 and "Not valid JSON" in response.content.decode()


def test_private_override_through_admin(admin_client, plan):
    customer = CustomerFactory(external_id="bigco")
    data = _charge_post(plan, [("calls", "standard", '{"unit_amount": "0.002"}')], customer=customer.pk)
    response = admin_client.post(reverse("admin:catalog_planversion_add"), data)
    assert response.status_code == 302
    override = PlanVersion.objects.get(plan=plan, customer=customer)
    assert override.based_on == plan_current_version(plan) and override.version == 2
    assert override.charges.get().properties == {"unit_amount": "0.002"}


def test_plan_and_metric_add_through_admin(admin_client):
    response = admin_client.post(reverse("admin:catalog_billablemetric_add"),
                                 {"code": "gb", "name": "GB", "description": "", "aggregation": "sum", "field": ""})
    assert response.status_code == 200 and not BillableMetric.objects.exists()  # sum needs a field
    response = admin_client.post(reverse("admin:catalog_billablemetric_add"),
                                 {"code": "gb", "name": "GB", "description": "", "aggregation": "sum", "field": "gb"})
    assert response.status_code == 302 and BillableMetric.objects.get().field == "gb"
    response = admin_client.post(reverse("admin:catalog_plan_add"),
                                 {"code": "starter", "name": "Starter", "description": "", "currency": "EUR",
                                  "interval": "month", "versions-TOTAL_FORMS": "0", "versions-INITIAL_FORMS": "0",
                                  "versions-MIN_NUM_FORMS": "0", "versions-MAX_NUM_FORMS": "1000"})
    assert response.status_code == 302, response.content.decode()[:3000]
    assert plan_current_version(Plan.objects.get(code="starter")).version == 1


def test_plan_changelist_shows_current_public_versions_without_a_query_per_plan(admin_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.catalog.factories import PlanVersionFactory

    def changelist():
        with CaptureQueriesContext(connection) as queries:
            page = admin_client.get(reverse("admin:catalog_plan_changelist"))
        assert page.status_code == 200
        return page.content.decode(), len(queries)

    v1 = PlanVersionFactory(plan__code="alpha")
    PlanVersionFactory(plan=v1.plan)  # v2, public
    PlanVersionFactory(plan=v1.plan, customer=CustomerFactory(), based_on=v1)  # v3, a private override
    page, few = changelist()
    assert '<td class="field-current_version_label">v2</td>' in page
    for _ in range(5):
        PlanVersionFactory()
    assert changelist()[1] == few
