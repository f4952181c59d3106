"""Domain events: every audit row reaches the subscribers of its action, single and batched."""

from common import hooks
from common.audit import audit_bulk_create, audit_record
from common.models import AuditEvent
from customers.models import Customer


def test_audit_rows_are_published_to_exact_prefix_and_wildcard_subscribers(db):
    seen: list[tuple[str, str]] = []
    batches: list[int] = []

    def exact(event):
        seen.append(("exact", event.action))

    def prefix(event):
        seen.append(("prefix", event.action))

    def many(events):
        batches.append(len(events))

    hooks.subscribe("customer.created", exact)
    hooks.subscribe("customer.", prefix)
    hooks.subscribe("*", many, many=True)
    try:
        customer = Customer.objects.create(external_id="hooks", name="Hooks", currency="USD")
        audit_record(action="customer.created", obj=customer)
        audit_bulk_create([
            AuditEvent(action="customer.updated", object_type="customers.customer", object_id=str(customer.pk)),
            AuditEvent(action="invoice.generated", object_type="invoicing.invoice", object_id="x"),
        ])
    finally:
        for action, handler in (("customer.created", exact), ("customer.", prefix), ("*", many)):
            hooks.unsubscribe(action, handler)
    assert seen == [("exact", "customer.created"), ("prefix", "customer.created"), ("prefix", "customer.updated")]
    assert batches == [1, 2]
    assert AuditEvent.objects.filter(object_id=str(customer.pk)).count() == 2
