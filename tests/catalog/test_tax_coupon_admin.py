"""Admin for tax rates, coupons and redemptions: every write goes through the services, and a
rule the service refuses shows as a form error, not a 500."""

import datetime
from decimal import Decimal as D

import pytest
from django.urls import reverse

from catalog.models import Coupon, TaxRate
from catalog.services import coupon_create, tax_rate_create
from common.models import AuditEvent
from invoicing.coupons import coupon_apply
from invoicing.models import CouponRedemption
from tests.catalog.factories import PlanVersionFactory
from tests.customers.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_add_tax_rate_through_the_service(admin_client):
    response = admin_client.post(reverse("admin:catalog_taxrate_add"), {
        "name": "CA state", "country": "us", "region": "CA", "rate": "7.25", "active": "on",
        "valid_from": "", "valid_to": ""})
    assert response.status_code == 302, response.content[:2000]
    rate = TaxRate.objects.get()
    assert (rate.country, rate.region, rate.rate) == ("US", "CA", D("7.25"))
    assert AuditEvent.objects.get(action="tax_rate.created").actor == "user:admin"


def test_bad_tax_rate_is_a_form_error(admin_client):
    response = admin_client.post(reverse("admin:catalog_taxrate_add"), {
        "name": "x", "country": "XX", "region": "", "rate": "7", "active": "on"})
    assert response.status_code == 200
    assert "is not an ISO 3166-1 alpha-2 country code" in response.content.decode()
    assert not TaxRate.objects.exists()


def test_edit_tax_rate_keeps_the_rate(admin_client):
    rate = tax_rate_create(name="VAT", country="DE", rate="19")
    response = admin_client.post(reverse("admin:catalog_taxrate_change", args=[rate.pk]), {
        "name": "DE VAT", "active": "", "valid_to": "2026-07-01", "rate": "5"})
    assert response.status_code == 302, response.content[:2000]
    rate.refresh_from_db()
    assert (rate.name, rate.active, rate.valid_to, rate.rate) == ("DE VAT", False, datetime.date(2026, 7, 1), D("19"))


def test_add_coupon_with_plans_and_list_it(admin_client):
    version = PlanVersionFactory(plan__code="pro")
    response = admin_client.post(reverse("admin:catalog_coupon_add"), {
        "code": "PRO20", "name": "20% on Pro", "kind": "percent", "percent_off": "20", "amount_off": "",
        "currency": "", "duration": "repeating", "duration_periods": "3", "applies_to_plans": [version.plan_id],
        "active": "on", "redeem_by": "", "max_redemptions": "10"})
    assert response.status_code == 302, response.content[:3000]
    coupon = Coupon.objects.get(code="PRO20")
    assert list(coupon.applies_to_plans.values_list("code", flat=True)) == ["pro"]
    assert (coupon.percent_off, coupon.duration_periods, coupon.max_redemptions) == (D("20"), 3, 10)
    assert admin_client.get(reverse("admin:catalog_coupon_changelist")).status_code == 200
    coupon_apply(coupon=coupon, customer=CustomerFactory())
    page = admin_client.get(reverse("admin:catalog_coupon_change", args=[coupon.pk]))
    assert page.status_code == 200 and "cus_" in page.content.decode()


def test_invalid_coupon_is_a_form_error(admin_client):
    response = admin_client.post(reverse("admin:catalog_coupon_add"), {
        "code": "BAD", "name": "bad", "kind": "fixed", "amount_off": "5.001", "currency": "USD", "percent_off": "",
        "duration": "once", "duration_periods": "", "active": "on"})
    assert response.status_code == 200
    assert "at most 2 decimal places for USD" in response.content.decode()
    assert not Coupon.objects.exists()


def test_apply_and_remove_coupon_from_the_admin(admin_client):
    customer = CustomerFactory(currency="USD")
    coupon = coupon_create(code="EUR5", name="5", kind="fixed", amount_off="5", currency="EUR")
    response = admin_client.post(reverse("admin:invoicing_couponredemption_add"),
                                 {"coupon": coupon.pk, "customer": customer.pk, "subscription": ""})
    assert response.status_code == 200 and "the coupon is in EUR" in response.content.decode()
    usd = coupon_create(code="USD5", name="5", kind="fixed", amount_off="5", currency="USD")
    response = admin_client.post(reverse("admin:invoicing_couponredemption_add"),
                                 {"coupon": usd.pk, "customer": customer.pk, "subscription": ""})
    assert response.status_code == 302, response.content[:2000]
    redemption = CouponRedemption.objects.get()
    response = admin_client.post(reverse("admin:invoicing_couponredemption_changelist"),
                                 {"action": "remove", "_selected_action": [redemption.pk]})
    assert response.status_code == 302
    redemption.refresh_from_db()
    assert redemption.removed_at is not None
    assert admin_client.get(reverse("admin:invoicing_couponredemption_change", args=[redemption.pk])).status_code == 200
