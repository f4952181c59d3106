"""Finance edits customers in the admin through the same services as the API."""

import pytest
from django.urls import reverse

from common.models import AuditEvent
from customers.models import Customer
from tests.customers.factories import CustomerFactory
from tests.subscriptions.factories import SubscriptionFactory

pytestmark = pytest.mark.django_db


def _form(customer: Customer, **changes) -> dict:
    data = {"name": customer.name, "currency": customer.currency, "email": customer.email, "billing_email": "",
            "timezone": customer.timezone, "country": customer.country, "region": "", "address": "", "tax_id": "",
            "collection_method": customer.collection_method, "net_terms_days": customer.net_terms_days,
            "invoice_grace_period_days": 0, "metadata": "{}"}
    return {**data, **changes}


def test_admin_add_and_change_go_through_the_services(admin_client):
    response = admin_client.post(reverse("admin:customers_customer_add"), {
        "external_id": "acme", **_form(CustomerFactory.build(external_id="acme"), name="Acme")})
    assert response.status_code == 302, response.content[:2000]
    customer = Customer.objects.get(external_id="acme")
    response = admin_client.post(reverse("admin:customers_customer_change", args=[customer.pk]),
                                 _form(customer, name="Acme GmbH", currency="EUR"))
    assert response.status_code == 302, response.content[:2000]
    customer.refresh_from_db()
    assert (customer.name, customer.currency) == ("Acme GmbH", "EUR")
    assert list(AuditEvent.objects.filter(object_id=str(customer.pk)).order_by("created_at")
                .values_list("action", flat=True)) == ["customer.created", "customer.updated"]


def test_admin_cannot_change_the_currency_of_a_billed_customer(admin_client):
    subscription = SubscriptionFactory()
    customer = subscription.customer
    response = admin_client.post(reverse("admin:customers_customer_change", args=[customer.pk]),
                                 _form(customer, currency="EUR"))
    assert response.status_code == 200
    assert "Currency cannot change" in response.content.decode()
    customer.refresh_from_db()
    assert customer.currency == "USD"
