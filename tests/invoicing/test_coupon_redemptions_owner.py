"""Coupon redemptions belong to invoicing (moved from catalog): what the move must not change."""

import pytest

from catalog.services import coupon_create
from common.models import AuditEvent
from customers.services import customer_update
from invoicing.coupons import REDEMPTION_OBJECT_TYPES, coupon_apply, coupon_redemptions_for_invoice
from invoicing.models import CouponRedemption
from tests.customers.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_a_redemption_does_not_lock_the_customer_currency():
    customer = CustomerFactory(currency="USD")
    coupon_apply(coupon=coupon_create(code="FIX5", name="5 off", kind="fixed", amount_off="5", currency="USD"),
                 customer=customer)
    customer = customer_update(customer=customer, currency="EUR")
    assert customer.currency == "EUR"
    assert coupon_redemptions_for_invoice(customer=customer, currency="EUR") == []  # a USD coupon stops applying


def test_redemption_rows_stay_in_the_catalog_tables_and_audit_under_the_new_label():
    assert (CouponRedemption._meta.db_table, CouponRedemption.history.model._meta.db_table) == (
        "catalog_couponredemption", "catalog_historicalcouponredemption")
    redemption = coupon_apply(coupon=coupon_create(code="P10", name="10%", kind="percent", percent_off="10"),
                              customer=CustomerFactory())
    event = AuditEvent.objects.get(action="coupon.applied")
    assert (event.object_type, event.object_id) == ("invoicing.couponredemption", str(redemption.pk))
    assert REDEMPTION_OBJECT_TYPES == ("invoicing.couponredemption", "catalog.couponredemption")
