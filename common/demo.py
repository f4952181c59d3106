"""The demo data set: realistic customers, plans, subscriptions and usage, loaded idempotently by
`manage.py seed_demo`. Everything goes through the same services the API uses."""

from __future__ import annotations

import os

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from customers.models import Customer
from customers.services import customer_create

DEMO_ADMIN_USERNAME = os.environ.get("DEMO_ADMIN_USERNAME", "admin")
DEMO_ADMIN_PASSWORD = os.environ.get("DEMO_ADMIN_PASSWORD", "ledgerline-demo")

DEMO_CUSTOMERS = [
    dict(external_id="acme", name="Acme Analytics Inc.", currency="USD", email="ops@acme.example",
         billing_email="ap@acme.example", timezone="America/Los_Angeles", country="US", region="CA",
         collection_method="send_invoice", net_terms_days=30),
    dict(external_id="globex", name="Globex GmbH", currency="EUR", email="it@globex.example",
         billing_email="rechnung@globex.example", timezone="Europe/Berlin", country="DE", tax_id="DE123456789",
         collection_method="send_invoice", net_terms_days=14),
    dict(external_id="initech", name="Initech Pty Ltd", currency="USD", email="finance@initech.example",
         timezone="Pacific/Auckland", country="NZ", collection_method="send_invoice", net_terms_days=30),
    dict(external_id="umbrella", name="Umbrella KK", currency="JPY", email="keiri@umbrella.example",
         timezone="Asia/Tokyo", country="JP", collection_method="send_invoice", net_terms_days=30),
]


def demo_admin_ensure() -> None:
    User = get_user_model()
    user, created = User.objects.get_or_create(username=DEMO_ADMIN_USERNAME, defaults={"is_staff": True, "is_superuser": True})
    if created:
        user.set_password(DEMO_ADMIN_PASSWORD)
        user.save()
    viewer, created = User.objects.get_or_create(username="viewer", defaults={"is_staff": True})
    if created:
        viewer.set_password(DEMO_ADMIN_PASSWORD)
        viewer.save()
        viewer.groups.add(Group.objects.get(name="finance-viewer"))


def demo_customers_ensure() -> dict[str, Customer]:
    out = {}
    for data in DEMO_CUSTOMERS:
        existing = Customer.objects.filter(external_id=data["external_id"]).first()
        out[data["external_id"]] = existing or customer_create(actor="seed_demo", **data)
    return out


@transaction.atomic
def seed_demo() -> dict:
    demo_admin_ensure()
    customers = demo_customers_ensure()
    return {"customers": len(customers)}
