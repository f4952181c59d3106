"""The `data` of a webhook event: the resource as the API shows it, through the API's own serializers.

Decision: the payload is built at the first delivery attempt (in the sweeper, right after commit), not
in the transaction of the change, and then frozen on the event: every endpoint and every retry get the
same body. This keeps the outbox write cheap (a 10,000-invoice billing run serializes nothing in its
transaction); the price is that a resource changed again before its first delivery is shown as it then
is (the event `type` still says what happened). Object types without a serializer yet (payments,
dunning cases, anomalies, alerts: later work) fall back to `{"object", "id", ...the audit inputs}`;
registering a loader here upgrades them. An object that no longer exists (a deleted draft) is sent as
`{"object", "id", "deleted": true, ...the audit inputs}`."""

from __future__ import annotations

from importlib import import_module
from typing import Callable

from django.apps import apps
from django.core.exceptions import ObjectDoesNotExist

from common.errors import NotFoundError
from customers.models import Customer
from customers.serializers import CustomerSerializer
from invoicing.selectors import credit_note_get, invoice_get
from invoicing.serializers import CreditNoteSerializer, InvoiceSerializer
from subscriptions.models import Subscription
from subscriptions.serializers import SubscriptionSerializer

LOADERS: dict[str, Callable[[str], dict]] = {}


def register(object_type: str):
    def decorator(func):
        LOADERS[object_type] = func
        return func

    return decorator


@register("invoicing.invoice")
def _invoice(object_id: str) -> dict:
    return InvoiceSerializer(invoice_get(invoice_id=object_id)).data


@register("invoicing.creditnote")
def _credit_note(object_id: str) -> dict:
    return CreditNoteSerializer(credit_note_get(credit_note_id=object_id)).data


@register("subscriptions.subscription")
def _subscription(object_id: str) -> dict:
    subscription = Subscription.objects.select_related("customer", "plan_version__plan").get(pk=object_id)
    return SubscriptionSerializer(subscription).data


@register("customers.customer")
def _customer(object_id: str) -> dict:
    return CustomerSerializer(Customer.objects.get(pk=object_id)).data


def _by_serializer_path(object_type: str, object_id: str) -> dict | None:
    """Objects of apps built later, found by convention (`payments.payment` → payments.serializers.PaymentSerializer)."""
    app_label, model_name = object_type.split(".", 1)
    try:
        model = apps.get_model(app_label, model_name)
        module = import_module(f"{app_label}.serializers")
    except (LookupError, ImportError):
        return None
    serializer = getattr(module, f"{model.__name__}Serializer", None)
    if serializer is None:
        return None
    return serializer(model.objects.get(pk=object_id)).data


def event_data(*, object_type: str, object_id: str, inputs: dict) -> dict:
    try:
        loader = LOADERS.get(object_type)
        data = loader(object_id) if loader else _by_serializer_path(object_type, object_id)
    except (ObjectDoesNotExist, NotFoundError, ValueError):
        return {"object": object_type, "id": object_id, "deleted": True, **(inputs or {})}
    if data is None:
        return {"object": object_type, "id": object_id, **(inputs or {})}
    return dict(data)
