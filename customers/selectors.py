from __future__ import annotations

from common.errors import NotFoundError
from customers.models import Customer


def customer_get(*, external_id: str) -> Customer:
    customer = Customer.objects.filter(external_id=external_id).first()
    if customer is None:
        raise NotFoundError(f"Customer '{external_id}' not found.", fields={"customer": ["not found"]})
    return customer
