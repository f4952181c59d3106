"""Review checks: how a higher app holds a fresh draft in the review queue without invoicing
importing it (DESIGN.md §1, §12).

The billing run builds each chunk's drafts in memory, runs its own rule (zero usage after usage),
then hands the drafts to every registered check before inserting them, inside the chunk's
transaction. A check returns, per draft, the reasons it should wait for review; each reason is a
dict with at least `rule` (e.g. `anomaly.spike`) and is stored in `review_reasons` and written as an
`invoice.flagged` audit event like the built-in rules. Analytics registers its anomaly check in
`AppConfig.ready()`:

    review.register_check(anomaly_review_check)

A check is called with a list of `DraftForReview` and returns `{invoice_pk: [reason, ...]}`. It runs
inside the billing transaction (it may write its own rows there), must be set-based (one or a few
queries per chunk) and only raise for a real invariant (raising fails the chunk's subscriptions).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Callable

_checks: list[Callable] = []


@dataclass(frozen=True)
class DraftForReview:
    invoice: object  # the unsaved Invoice (pk assigned)
    subscription: object
    lines: list  # its unsaved InvoiceLines
    usage_total: Decimal  # sum of its usage and late-usage lines


def register_check(check: Callable) -> None:
    if check not in _checks:
        _checks.append(check)


def unregister_check(check: Callable) -> None:
    if check in _checks:
        _checks.remove(check)


def run_checks(drafts: list[DraftForReview]) -> dict:
    """Every registered check over the drafts → {invoice_pk: [reason, ...]} (checks in registration order)."""
    out: dict = {}
    if not drafts:
        return out
    for check in list(_checks):
        for pk, reasons in (check(drafts) or {}).items():
            out.setdefault(pk, []).extend(reasons)
    return out
