"""Pricing simulation (DESIGN.md §12, API.md POST /simulations/): a candidate plan rated over the
stored usage of already-billed service periods with the real rating engine; nothing is billed.

What is compared, per subscription, over the service periods starting in [from, to) of its non-void
invoices: the recurring lines (base fee, usage, minimum-commitment true-up) before discounts and
tax. `actual` is what those lines billed; `simulated` re-rates the same periods with the candidate:
- base fee: the candidate's amount × the line's seats, prorated by the line's own days (the billing
  run's `prorate`, so a full period is the amount exactly);
- usage: each billed usage window (subscription, period start, period end) aggregated again from
  the stored events without late arrivals (as the invoice was), in one grouped query per round of
  windows (`usage.selectors.usage_aggregate_windows`), and rated with `catalog.rating.rate_charge`
  for every candidate charge;
- minimum commitment: the candidate's minimum, prorated like the billing run (days of the window
  over the days of its full period), trued up against the window's simulated base fee + usage.
Re-rating with the plan each subscription is on reproduces `actual` exactly (the self-check, tested);
late-usage, proration, credit and adjustment lines are outside the comparison.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from catalog.models import Plan, PlanVersion
from catalog.rating import minimum_commitment_true_up, needs_event_values, rate_charge
from catalog.services import charges_validate
from catalog.validation import Errors, money_places_check, parse_price
from common.errors import ApplicationError
from common.money import format_money, is_valid_currency, quantize_money
from common.timeutil import local_date_bounds_utc
from invoicing.models import InvoiceLine, InvoiceStatus, LineKind
from subscriptions.models import Subscription
from subscriptions.periods import full_period_days, period_containing, prorate
from usage.selectors import usage_aggregate_windows, usage_event_values

ZERO = Decimal(0)
MAX_SUBSCRIPTIONS = 20_000


@dataclass(frozen=True)
class CandidateCharge:
    billable_metric_id: int
    model: str
    properties: dict


@dataclass(frozen=True)
class Candidate:
    label: str
    currency: str
    amount: Decimal
    minimum_commitment: Decimal | None
    charges: tuple[CandidateCharge, ...]


def candidate_from_plan_code(code: str) -> Candidate:
    plan = Plan.objects.filter(code=code).first()
    version = plan.current_version if plan else None
    if version is None:
        raise ApplicationError(f"No plan {code!r}.", fields={"plan": ["unknown plan"]})
    return Candidate(label=code, currency=plan.currency, amount=version.amount,
                     minimum_commitment=version.minimum_commitment,
                     charges=tuple(CandidateCharge(c.billable_metric_id, c.model, c.properties)
                                   for c in version.charges.order_by("position", "pk")))


def candidate_from_definition(data: dict) -> Candidate:
    """An inline plan as in POST /plans/ (code, name and interval optional here)."""
    errors = Errors()
    currency = str(data.get("currency") or "").upper()
    if not is_valid_currency(currency):
        errors.add("plan.currency", "an ISO 4217 currency is required.")
        errors.raise_if_any("Invalid plan.")
    amount = parse_price(errors, "plan.amount", data.get("amount", "0"))
    minimum = parse_price(errors, "plan.minimum_commitment", data.get("minimum_commitment"), required=False,
                          allow_null=True)
    money_places_check(errors, "plan.minimum_commitment", minimum, currency)
    charges = charges_validate(charges=data.get("charges") or [], currency=currency, errors=errors, path="plan.charges")
    errors.raise_if_any("Invalid plan.")
    return Candidate(label=str(data.get("code") or "inline"), currency=currency, amount=amount or ZERO,
                     minimum_commitment=minimum,
                     charges=tuple(CandidateCharge(c["billable_metric"].pk, c["model"], c["properties"]) for c in charges))


@dataclass
class _Window:
    subscription_id: int
    start: date
    end: date
    base: Decimal = ZERO
    actual: Decimal = ZERO


def simulate(*, candidate: Candidate | None, subscription_ids: list[int], start: date, end: date) -> dict:
    """Rows per subscription and totals. `candidate=None` re-rates every subscription on its own
    billed plan version (the self-check)."""
    if start >= end:
        raise ApplicationError("'from' must be before 'to'.", fields={"from": ["not before 'to'"]})
    subs = {s.pk: s for s in Subscription.objects.filter(pk__in=subscription_ids)
            .select_related("customer", "plan_version__plan")}
    if candidate is not None:
        subs = {pk: s for pk, s in subs.items() if s.plan_version.plan.currency == candidate.currency}
    lines = list(InvoiceLine.objects.filter(
        invoice__subscription_id__in=list(subs), period_start__gte=start, period_start__lt=end,
        kind__in=(LineKind.SUBSCRIPTION, LineKind.USAGE, LineKind.MINIMUM_COMMITMENT))
        .exclude(invoice__status=InvoiceStatus.VOID)
        .values_list("invoice__subscription_id", "kind", "amount", "quantity", "period_start", "period_end",
                     "metadata", "plan_version_id", "billable_metric_id"))
    actual: dict[int, Decimal] = defaultdict(lambda: ZERO)
    simulated: dict[int, Decimal] = defaultdict(lambda: ZERO)
    windows: dict[tuple, _Window] = {}
    window_version: dict[tuple, int] = {}
    base_lines = []
    for sub_id, kind, amount, quantity, p0, p1, meta, version_id, metric_id in lines:
        actual[sub_id] += amount
        if kind == LineKind.USAGE:
            key = (sub_id, p0, p1)
            windows.setdefault(key, _Window(sub_id, p0, p1))
            window_version[key] = version_id
        elif kind == LineKind.SUBSCRIPTION:
            base_lines.append((sub_id, amount, quantity, p0, p1, meta or {}, version_id))
        elif kind == LineKind.MINIMUM_COMMITMENT:
            key = (sub_id, p0, p1)
            windows.setdefault(key, _Window(sub_id, p0, p1))
            window_version.setdefault(key, version_id)

    versions = _versions({v for v in window_version.values()} | {b[6] for b in base_lines}) if candidate is None else {}

    # base fees
    by_sub: dict[int, list[_Window]] = defaultdict(list)
    for w in windows.values():
        by_sub[w.subscription_id].append(w)
    for sub_id, amount, quantity, p0, p1, meta, version_id in base_lines:
        cand = candidate or versions[version_id]
        currency = subs[sub_id].plan_version.plan.currency
        nominal = cand.amount * quantity
        if meta.get("days") and meta.get("full_period_days"):
            fee = prorate(amount=nominal, days_used=int(meta["days"]), days_in_period=int(meta["full_period_days"]),
                          currency=currency)
        else:
            fee = quantize_money(nominal, currency)
        simulated[sub_id] += fee
        for w in by_sub.get(sub_id, ()):
            if w.start <= p0 and p1 <= w.end:
                w.base += fee

    # usage, one grouped query per round of windows
    metric_ids = ({c.billable_metric_id for c in candidate.charges} if candidate is not None else
                  {c.billable_metric_id for v in versions.values() for c in v.charges})
    usage = usage_aggregate_windows(
        [(key, key[0], *local_date_bounds_utc(key[1], key[2], subs[key[0]].customer.timezone)) for key in windows],
        metric_ids=metric_ids or None) if windows and metric_ids else {}
    for key, w in windows.items():
        sub = subs[w.subscription_id]
        cand = candidate or versions[window_version[key]]
        currency = sub.plan_version.plan.currency
        usage_total = ZERO
        for charge in cand.charges:
            agg = usage.get(key, {}).get(charge.billable_metric_id)
            quantity, count = (agg.quantity, agg.event_count) if agg else (ZERO, 0)
            values = None
            if needs_event_values(model=charge.model, properties=charge.properties):
                b0, b1 = local_date_bounds_utc(w.start, w.end, sub.customer.timezone)
                values = usage_event_values(subscription_id=sub.pk, metric_id=charge.billable_metric_id,
                                            start=b0, end=b1)
            usage_total += rate_charge(charge=charge, quantity=quantity, currency=currency, event_count=count,
                                       event_values=values).amount
        simulated[w.subscription_id] += usage_total
        if cand.minimum_commitment:
            interval = sub.plan_version.plan.interval
            period = period_containing(start_date=sub.start_date, interval=interval, billing_time=sub.billing_time,
                                       on=w.start)
            full = full_period_days(period, interval=interval)
            days = (w.end - w.start).days
            minimum = (cand.minimum_commitment if days == full else
                       prorate(amount=cand.minimum_commitment, days_used=days, days_in_period=full, currency=currency))
            simulated[w.subscription_id] += minimum_commitment_true_up(minimum=minimum, subtotal=w.base + usage_total,
                                                                       currency=currency)

    rows, totals = [], {"actual": ZERO, "simulated": ZERO}
    for pk in sorted(subs, key=lambda pk: subs[pk].external_id):
        currency = subs[pk].plan_version.plan.currency
        a, s = quantize_money(actual[pk], currency), quantize_money(simulated[pk], currency)
        rows.append({"subscription": subs[pk].external_id, "customer": subs[pk].customer.external_id,
                     "currency": currency, "actual": format_money(a, currency), "simulated": format_money(s, currency),
                     "delta": format_money(s - a, currency)})
        totals["actual"] += a
        totals["simulated"] += s
    currency = candidate.currency if candidate is not None else (rows[0]["currency"] if rows else "USD")
    return {"plan": candidate.label if candidate else None, "from": start.isoformat(), "to": end.isoformat(),
            "rows": rows,
            "totals": {"currency": currency, "subscriptions": len(rows),
                       "actual": format_money(totals["actual"], currency),
                       "simulated": format_money(totals["simulated"], currency),
                       "delta": format_money(totals["simulated"] - totals["actual"], currency)}}


def _versions(version_ids) -> dict[int, Candidate]:
    out = {}
    for v in PlanVersion.objects.filter(pk__in=[v for v in version_ids if v]).select_related("plan").prefetch_related(
            "charges"):
        out[v.pk] = Candidate(label=v.plan.code, currency=v.plan.currency, amount=v.amount,
                              minimum_commitment=v.minimum_commitment,
                              charges=tuple(CandidateCharge(c.billable_metric_id, c.model, c.properties)
                                            for c in sorted(v.charges.all(), key=lambda c: (c.position, c.pk))))
    return out


def simulation_run(*, plan, subscriptions: list[str] | None, current_plan: str | None, start: date, end: date) -> dict:
    """The API's entry: resolve the candidate and the subscriptions, then `simulate`."""
    if isinstance(plan, dict):
        candidate = candidate_from_definition(plan)
    elif isinstance(plan, str) and plan:
        candidate = candidate_from_plan_code(plan)
    else:
        raise ApplicationError("'plan' (a plan code or an inline plan) is required.", fields={"plan": ["required"]})
    if subscriptions:
        found = dict(Subscription.objects.filter(external_id__in=subscriptions).values_list("external_id", "pk"))
        missing = [s for s in subscriptions if s not in found]
        if missing:
            raise ApplicationError(f"Unknown subscription(s): {', '.join(missing[:5])}.",
                                   fields={"subscriptions": [f"unknown: {', '.join(missing[:5])}"]})
        ids = list(found.values())
    elif current_plan:
        ids = list(Subscription.objects.filter(plan_version__plan__code=current_plan).values_list("pk", flat=True))
        if not ids and not Subscription.objects.model._meta.apps.get_model("catalog", "Plan").objects.filter(
                code=current_plan).exists():
            raise ApplicationError(f"No plan {current_plan!r}.", fields={"current_plan": ["unknown plan"]})
    else:
        raise ApplicationError("Give 'subscriptions' or 'current_plan'.", fields={"subscriptions": ["required"]})
    if len(ids) > MAX_SUBSCRIPTIONS:
        raise ApplicationError(f"At most {MAX_SUBSCRIPTIONS} subscriptions per simulation.",
                               fields={"subscriptions": ["too many"]})
    return simulate(candidate=candidate, subscription_ids=ids, start=start, end=end)


def plan_charges_definition(version: PlanVersion) -> list[dict]:
    """A version's charges in POST /plans/'s form (the starting point of a price change)."""
    return [{"billable_metric": c.billable_metric.code, "model": c.model, "properties": c.properties}
            for c in version.charges.select_related("billable_metric").order_by("position", "pk")]


def price_change_definition(*, code: str, amount: str = "", charges: list | None = None) -> dict:
    """An inline candidate plan: plan `code`'s current version with a new base fee and/or new charges
    (the "price change" form of POST /simulations/'s `plan`)."""
    plan = Plan.objects.filter(code=code).first()
    version = plan.current_version if plan else None
    if version is None:
        raise ApplicationError(f"plan: no plan {code!r}.")
    return {"code": f"{code} (changed)", "currency": plan.currency, "amount": amount or f"{version.amount:f}",
            "minimum_commitment": None if version.minimum_commitment is None else f"{version.minimum_commitment:f}",
            "charges": charges if charges is not None else plan_charges_definition(version)}


def simulation_self_check(*, result: dict, start: date, end: date) -> dict:
    """Re-rate the simulated subscriptions on the versions they were billed with: the amounts must
    reproduce what was billed (`ok`), else the mismatching rows."""
    ids = list(Subscription.objects.filter(external_id__in=[r["subscription"] for r in result["rows"]])
               .values_list("pk", flat=True))
    check = simulate(candidate=None, subscription_ids=ids, start=start, end=end)
    mismatches = [r for r in check["rows"] if r["actual"] != r["simulated"]]
    return {"ok": not mismatches, "mismatches": mismatches, "totals": check["totals"]}
