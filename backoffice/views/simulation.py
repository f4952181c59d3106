"""Pricing simulation (issue 17 in the back office): a candidate plan, or a price change to an existing
plan, re-rated over already-billed periods by `analytics.simulation` (the rating engine over stored
usage; nothing is billed). The page takes what POST /api/v1/simulations/ takes (a plan code or an
inline plan; subscriptions or everyone on a plan; from / to), shows the rows and totals, the
self-check (the same subscriptions re-rated on the versions they were billed with must reproduce
what was billed) and offers the rows as CSV. A read: finance viewers may simulate too."""

from __future__ import annotations

import csv
import json
from datetime import date

from django.http import HttpResponse

from analytics.simulation import (plan_charges_definition, price_change_definition, simulation_run,
                                 simulation_self_check)
from backoffice.roles import viewer_required
from backoffice.views.base import page
from catalog.models import Plan
from common.errors import ApplicationError

CSV_COLUMNS = ["subscription", "customer", "currency", "actual", "simulated", "delta"]


def error_text(exc: ApplicationError) -> str:
    """The service's message and the fields it names ("Invalid plan. plan.charges[0].model: …")."""
    fields = "; ".join(f"{name}: {' '.join(str(m) for m in (msgs if isinstance(msgs, list) else [msgs]))}"
                       for name, msgs in (exc.fields or {}).items())
    return f"{exc.message} {fields}".strip()


def _date(params, name: str) -> date:
    text = params.get(name, "").strip()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ApplicationError(f"{name}: a date (YYYY-MM-DD) is required.") from None


def _candidate(params):
    """A plan code, or (with a new amount and/or charges) a price change to that plan."""
    code = params.get("plan", "").strip()
    amount = params.get("amount", "").strip()
    charges = params.get("charges", "").strip()
    if not code:
        raise ApplicationError("plan: choose the candidate plan (or the plan whose prices change).")
    if not amount and not charges:
        return code
    parsed = None
    if charges:
        try:
            parsed = json.loads(charges)
        except ValueError:
            raise ApplicationError("charges: a JSON list of charges as in POST /plans/.") from None
        if not isinstance(parsed, list):
            raise ApplicationError("charges: a JSON list of charges as in POST /plans/.")
    return price_change_definition(code=code, amount=amount, charges=parsed)


def _subscriptions(params) -> tuple[list[str] | None, str | None]:
    listed = [s for s in params.get("subscriptions", "").replace(",", " ").split() if s]
    return (listed or None), (params.get("current_plan", "").strip() or None)


def run_simulation(params) -> dict:
    """The simulation and its self-check for the form's parameters (ApplicationError names the field)."""
    start, end = _date(params, "from"), _date(params, "to")
    listed, current_plan = _subscriptions(params)
    result = simulation_run(plan=_candidate(params), subscriptions=listed, current_plan=current_plan,
                            start=start, end=end)
    result["self_check"] = simulation_self_check(result=result, start=start, end=end)
    return result


def _form_context(params) -> dict:
    plans = list(Plan.objects.order_by("code").values_list("code", "name", "currency"))
    chosen = params.get("plan", "")
    plan = Plan.objects.filter(code=chosen).first() if chosen else None
    version = plan.current_version if plan else None
    return {"plans": plans, "params": params, "charges_example": json.dumps(plan_charges_definition(version), indent=1)
            if version else ""}


@viewer_required
def simulation(request):
    params = request.GET
    context = _form_context(params)
    if params.get("run"):
        try:
            context["result"] = run_simulation(params)
        except ApplicationError as exc:
            context["error"] = error_text(exc)
    return page(request, "backoffice/simulation.html", "simulation", **context)


@viewer_required
def simulation_csv(request):
    try:
        result = run_simulation(request.GET)
    except ApplicationError as exc:
        return HttpResponse(error_text(exc), status=400, content_type="text/plain; charset=utf-8")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="simulation-{result["from"]}-{result["to"]}.csv"'
    writer = csv.writer(response)
    writer.writerow(CSV_COLUMNS)
    for row in result["rows"]:
        writer.writerow([row[c] for c in CSV_COLUMNS])
    totals = result["totals"]
    writer.writerow(["total", "", totals["currency"], totals["actual"], totals["simulated"], totals["delta"]])
    return response
