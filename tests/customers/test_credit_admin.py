"""Finance grants prepaid credit and adjusts balances in the admin, through the services."""

from decimal import Decimal as D

import pytest
from django.urls import reverse

from customers.models import CreditGrant, CustomerBalanceTransaction
from customers.selectors import customer_credit_balance, prepaid_credit_available
from customers.services import prepaid_credit_consume
from tests.customers.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_grant_prepaid_credit(admin_client):
    customer = CustomerFactory()
    response = admin_client.post(reverse("admin:customers_creditgrant_add"), {
        "customer": customer.pk, "currency": "USD", "amount": "30.00", "expires_at_0": "", "expires_at_1": "",
        "reason": "Launch promo"})
    assert response.status_code == 302, response.content[:2000]
    grant = CreditGrant.objects.get()
    assert (grant.amount, grant.remaining) == (D("30.00"), D("30.00"))
    assert prepaid_credit_available(customer=customer, currency="USD") == D("30.00")
    prepaid_credit_consume(customer=customer, currency="USD", amount=D("12.00"), invoice_id="inv-1")
    page = admin_client.get(reverse("admin:customers_creditgrant_change", args=[grant.pk]))
    assert page.status_code == 200 and "inv-1" in page.content.decode()
    assert admin_client.get(reverse("admin:customers_creditgrant_changelist")).status_code == 200


def test_grant_with_bad_amount_is_a_form_error(admin_client):
    response = admin_client.post(reverse("admin:customers_creditgrant_add"), {
        "customer": CustomerFactory().pk, "currency": "JPY", "amount": "10.5", "reason": "promo"})
    assert response.status_code == 200 and "at most 0 decimal places for JPY" in response.content.decode()
    assert not CreditGrant.objects.exists()


def test_adjust_balance_and_refuse_going_negative(admin_client):
    customer = CustomerFactory()
    url = reverse("admin:customers_customerbalancetransaction_add")
    response = admin_client.post(url, {"customer": customer.pk, "currency": "USD", "amount": "25.00",
                                       "description": "goodwill"})
    assert response.status_code == 302, response.content[:2000]
    response = admin_client.post(url, {"customer": customer.pk, "currency": "USD", "amount": "-30.00",
                                       "description": "too much"})
    assert response.status_code == 200 and "cannot go below zero" in response.content.decode()
    assert customer_credit_balance(customer=customer, currency="USD") == D("25.00")
    txn = CustomerBalanceTransaction.objects.get()
    assert (txn.kind, txn.actor) == ("adjustment", "user:admin")
    assert admin_client.get(reverse("admin:customers_customerbalancetransaction_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:customers_customerbalancetransaction_change", args=[txn.pk])).status_code == 200
