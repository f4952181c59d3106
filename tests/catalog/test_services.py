"""Services: versioning, private overrides, audit, and rating a stored charge."""

import datetime
from decimal import Decimal as D

import pytest

from catalog.models import Charge, PlanVersion
from catalog.rating import rate_charge
from catalog.selectors import metric_get, plan_current_version, plan_get, plan_versions_with_subscription_counts
from catalog.services import billable_metric_create, plan_create, plan_update, plan_version_override_create
from common.errors import ApplicationError, ConflictError, NotFoundError
from common.models import AuditEvent
from subscriptions.models import Subscription
from tests.catalog.factories import BillableMetricFactory, ChargeFactory, PlanVersionFactory
from tests.customers.factories import CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def pro():
    BillableMetricFactory(code="api_calls")
    return plan_create(code="pro", name="Pro", currency="USD", interval="month", amount="49", minimum_commitment="200",
                       charges=[{"billable_metric": "api_calls", "model": "standard",
                                 "properties": {"unit_amount": "0.004"}}], actor="tester")


def subscribe(version, customer=None, external_id="sub_1"):
    return Subscription.objects.create(external_id=external_id, customer=customer or CustomerFactory(),
                                       plan_version=version, start_date=datetime.date(2026, 1, 1))


def test_plan_create_makes_version_one_with_charges_and_audit(pro):
    version = plan_current_version(pro)
    assert (version.version, version.amount, version.minimum_commitment) == (1, D("49"), D("200"))
    [charge] = version.charges.all()
    assert (charge.billable_metric.code, charge.model, charge.properties) == ("api_calls", "standard",
                                                                               {"unit_amount": "0.004"})
    assert set(AuditEvent.objects.values_list("action", flat=True)) == {"plan.created", "plan_version.created"}
    assert AuditEvent.objects.get(action="plan_version.created").inputs["charges"][0]["properties"] == {
        "unit_amount": "0.004"}


def test_running_subscription_keeps_its_version(pro):
    v1 = plan_current_version(pro)
    subscription = subscribe(v1)
    plan_update(plan=pro, charges=[{"billable_metric": "api_calls", "model": "standard",
                                    "properties": {"unit_amount": "0.005"}}], actor="tester")
    v2 = plan_current_version(pro)
    assert (v2.version, v2.based_on_id) == (2, v1.pk)
    assert v2.charges.get().properties == {"unit_amount": "0.005"}
    subscription.refresh_from_db()
    assert subscription.plan_version_id == v1.pk
    assert Charge.objects.get(plan_version=v1).properties == {"unit_amount": "0.004"}
    # the base price and commitment carry over to the new version
    assert (v2.amount, v2.minimum_commitment, v2.trial_days) == (D("49"), D("200"), 0)
    counts = {v.version: v.subscription_count for v in plan_versions_with_subscription_counts(pro)}
    assert counts == {1: 1, 2: 0}
    audit = AuditEvent.objects.filter(action="plan_version.created").order_by("created_at").last()
    assert (audit.inputs["previous_version"], audit.inputs["changed"]) == (1, ["charges"])


def test_same_prices_do_not_version(pro):
    plan_update(plan=pro, amount="49.00", minimum_commitment="200", charges=[
        {"billable_metric": "api_calls", "model": "standard", "properties": {"unit_amount": "0.004"}}])
    assert PlanVersion.objects.filter(plan=pro).count() == 1


def test_removing_minimum_commitment_versions(pro):
    plan_update(plan=pro, minimum_commitment=None)
    v2 = plan_current_version(pro)
    assert (v2.version, v2.minimum_commitment) == (2, None)
    assert v2.charges.count() == 1


def test_private_override_for_a_customer(pro):
    customer = CustomerFactory(external_id="acme")
    v1 = plan_current_version(pro)
    override = plan_version_override_create(base_version=v1, customer=customer, amount="39", charges=[
        {"billable_metric": "api_calls", "model": "standard", "properties": {"unit_amount": "0.003"}}], actor="sales")
    assert (override.version, override.customer, override.based_on) == (2, customer, v1)
    assert override.amount == D("39") and override.minimum_commitment == D("200")
    assert str(override) == "pro v2 for acme"
    # the public current version is still v1: new customers are not sold the private price
    assert plan_current_version(pro).pk == v1.pk
    # a later public version skips the private number
    plan_update(plan=pro, amount="59")
    assert plan_current_version(pro).version == 3
    rated = rate_charge(charge=override.charges.get(), quantity=D(100000), currency=override.currency)
    assert rated.amount == D("300.00")
    assert AuditEvent.objects.filter(action="plan_version.override_created", object_id=str(override.pk)).exists()


def test_override_copies_charges_when_not_given(pro):
    override = plan_version_override_create(base_version=plan_current_version(pro), customer=CustomerFactory(),
                                            minimum_commitment=None)
    assert override.minimum_commitment is None
    assert override.charges.get().properties == {"unit_amount": "0.004"}


def test_override_rejects_other_currency_customer(pro):
    with pytest.raises(ApplicationError) as excinfo:
        plan_version_override_create(base_version=plan_current_version(pro), customer=CustomerFactory(currency="EUR"))
    assert "customer" in excinfo.value.fields


def test_override_rejects_bad_tiers(pro):
    with pytest.raises(ApplicationError) as excinfo:
        plan_version_override_create(base_version=plan_current_version(pro), customer=CustomerFactory(), charges=[
            {"billable_metric": "api_calls", "model": "volume", "properties": {"tiers": [{"up_to": 5, "unit_amount": "1"}]}}])
    assert "charges[0].properties.tiers[0].up_to" in excinfo.value.fields


def test_plan_update_interval_locked(pro):
    with pytest.raises(ConflictError):
        plan_update(plan=pro, interval="year")


def test_selectors_raise_not_found():
    with pytest.raises(NotFoundError):
        metric_get("nope")
    with pytest.raises(NotFoundError):
        plan_get("nope")


def test_metric_create_service():
    metric = billable_metric_create(code="gb", name="GB", aggregation="latest", field="gb")
    assert metric.is_numeric and metric_get("gb") == metric
    with pytest.raises(ConflictError):
        billable_metric_create(code="gb", name="GB", aggregation="latest", field="gb")


def test_factories_and_rate_charge_design_tiers():
    charge = ChargeFactory.graduated(plan_version=PlanVersionFactory())
    assert rate_charge(charge=charge, quantity=D(60), currency="USD").amount == D("2350.00")
    volume = ChargeFactory.volume(plan_version=charge.plan_version)
    assert rate_charge(charge=volume, quantity=D(60), currency="USD").amount == D("2100.00")
