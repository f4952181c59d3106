"""Row locks, one idiom for every app: `SELECT … FOR UPDATE OF` the row itself (joined rows are read,
never locked), several rows always in primary-key order so two transactions never deadlock.

- `row_lock(Model, pk, related=…)`: lock one row and return it (raises `Model.DoesNotExist`).
- `rows_lock(Model, ids)`: lock rows in pk order WITHOUT joins and return the locked pks. A
  FOR UPDATE joined to another table silently drops a row whose joined column changed while we
  waited (PostgreSQL re-checks the join against the old joined row), so callers that need the
  relations read them after the lock.

The locks several apps take have a name in their owning app: `customers.locks.customer_lock`,
`subscriptions.locks.subscriptions_lock`. Queue claims (`skip_locked=True`) are not locks of this
kind and stay where they are written."""

from __future__ import annotations

from typing import Iterable, TypeVar

from django.db.models import Model

M = TypeVar("M", bound=Model)


def row_lock(model: type[M], pk, *, related: Iterable[str] = ()) -> M:
    """Lock the row `pk` of `model` (FOR UPDATE OF self) and return it, `related` read with it."""
    qs = model._default_manager.select_for_update(of=("self",))
    if related:
        qs = qs.select_related(*related)
    return qs.get(pk=pk)


def rows_lock(model: type[Model], ids: Iterable) -> list:
    """Lock the rows `ids` of `model` in pk order, without joins; return the pks that exist."""
    return list(model._default_manager.select_for_update().filter(pk__in=list(ids)).order_by("pk")
                .values_list("pk", flat=True))
