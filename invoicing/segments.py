"""Plan segments for billing: which plan version and seat count applied over a billed range, and
the charges of each version.

A period is billed on one segment (the fast path) unless a plan or seat change falls after the
oldest unbilled day or is still pending; then the ledger (`subscriptions.selectors.plan_segments`)
splits it. Usage is rated per run of one plan version (`merge_by_version`): a seat change alone
does not restart the tiers."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from catalog.models import Charge, PlanVersion
from subscriptions.models import ChangeKind, Subscription, SubscriptionChange
from subscriptions.selectors import plan_segments


@dataclass(frozen=True, slots=True)
class Segment:
    """[start, end) billed on one plan version with one seat count."""
    start: date
    end: date
    version: PlanVersion
    quantity: int


@dataclass(frozen=True, slots=True)
class VersionRun:
    """[start, end) on one plan version (seat changes merged): one usage window, rated on `version`."""
    start: date
    end: date
    version: PlanVersion


@dataclass(frozen=True, slots=True)
class ChangeMark:
    """A plan/seat change of a subscription: when it takes effect, when it was applied (None: pending)."""
    effective: date
    applied: object


def changes_by_subscription(ids) -> dict[int, list[ChangeMark]]:
    """The non-superseded plan/seat changes of the subscriptions, one query."""
    out: dict[int, list[ChangeMark]] = defaultdict(list)
    for sub_id, effective, applied in SubscriptionChange.objects.filter(
        subscription_id__in=ids, kind__in=[ChangeKind.PLAN, ChangeKind.QUANTITY], superseded_at__isnull=True,
    ).values_list("subscription_id", "effective_date", "applied_at"):
        out[sub_id].append(ChangeMark(effective, applied))
    return out


def needs_segments(sub: Subscription, changes, since: date | None = None) -> bool:
    """Fast path: no plan/seat change after the oldest unbilled day and none pending, so the
    current plan version and seats applied throughout."""
    if not changes:
        return False
    oldest = since or min(d for d in (sub.usage_billed_through, sub.advance_billed_through, sub.start_date) if d)
    return any(c.applied is None or c.effective > oldest for c in changes)


def segments(sub: Subscription, start: date, end: date, *, split: bool) -> list[Segment]:
    """The segments of [start, end): from the ledger when `split`, else the current version and seats."""
    if not split:
        return [Segment(start, end, sub.plan_version, sub.quantity)]
    return [Segment(*seg) for seg in plan_segments(subscription=sub, start=start, end=end)]


def merge_by_version(segs: list[Segment]) -> list[VersionRun]:
    """Usage is rated per plan version: a seat change alone does not restart the tiers."""
    merged: list[VersionRun] = []
    for seg in segs:
        if merged and merged[-1].version.pk == seg.version.pk and merged[-1].end == seg.start:
            merged[-1] = VersionRun(merged[-1].start, seg.end, merged[-1].version)
        else:
            merged.append(VersionRun(seg.start, seg.end, seg.version))
    return merged


class ChargesByVersion:
    """Charges by plan version, loaded once per chunk per version (with their metric)."""

    def __init__(self):
        self._by_version: dict[int, list[Charge]] = {}

    def load(self, version_ids) -> None:
        missing = [v for v in version_ids if v not in self._by_version]
        if not missing:
            return
        for v in missing:
            self._by_version[v] = []
        for charge in Charge.objects.filter(plan_version_id__in=missing).select_related("billable_metric").order_by(
                "plan_version_id", "position", "pk"):
            self._by_version[charge.plan_version_id].append(charge)

    def get(self, version_id) -> list[Charge]:
        if version_id not in self._by_version:
            self.load([version_id])
        return self._by_version[version_id]
