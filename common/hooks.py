"""Domain events: how a lower app lets higher apps react without importing them (DESIGN.md §1).

Every business audit row is a domain event. `common.audit.audit_record` and
`common.audit.audit_bulk_create` publish each row they write to the handlers subscribed to its
action, so `invoicing` never imports `payments`, `subscriptions` never imports `analytics`, and so on:
the higher app subscribes in its `AppConfig.ready()`:

    hooks.subscribe("invoice.finalized", charge_on_finalize)      # one action
    hooks.subscribe("subscription.", record_mrr_movement)         # every action with that prefix
    hooks.subscribe("*", write_outbox_rows, many=True)            # everything, a list at a time

Handlers run synchronously inside the caller's transaction (an outbox row written there commits or
rolls back with the change). They must be cheap; anything slow or external (Stripe, e-mail, HTTP)
goes behind `transaction.on_commit` or a Celery task. A handler that raises rolls the change back,
so only raise for a real invariant. The event is the `AuditEvent` row: `action`, `object_type`,
`object_id`, `actor`, `rule`, `inputs`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable

_single: dict[str, list[Callable]] = defaultdict(list)
_many: dict[str, list[Callable]] = defaultdict(list)


def subscribe(action: str, handler: Callable, *, many: bool = False) -> None:
    """`action` is an exact action ("invoice.finalized"), a prefix ending in "." ("invoice."), or "*".
    With `many=True` the handler receives a list of events (all of one publish call) instead of one."""
    registry = _many if many else _single
    if handler not in registry[action]:
        registry[action].append(handler)


def unsubscribe(action: str, handler: Callable) -> None:
    for registry in (_single, _many):
        if handler in registry.get(action, ()):
            registry[action].remove(handler)


def _keys(action: str) -> tuple[str, ...]:
    prefix = action.split(".", 1)[0] + "."
    return (action, prefix, "*")


def publish(events: list) -> None:
    """Hand freshly written audit events to their subscribers (called by common.audit)."""
    if not events or not (_single or _many):
        return
    for event in events:
        for key in _keys(event.action):
            for handler in list(_single.get(key, ())):
                handler(event)
    grouped: dict[Callable, list] = {}
    for event in events:
        for key in _keys(event.action):
            for handler in _many.get(key, ()):
                grouped.setdefault(handler, []).append(event)
    for handler, batch in grouped.items():
        handler(batch)
