"""The pricing simulation page: analytics.simulation over billed periods, rows, totals, self-check, CSV."""

from __future__ import annotations

import csv
import html
import io
import json
import re

import pytest

pytestmark = pytest.mark.django_db


def _text(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", response.content.decode()))


HALF_PRICE = json.dumps([{"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "0.50"}}])


def test_price_change_over_a_plan(books, viewer_client):
    # Acme's January on "metered": $20.00 base + 10 calls × $1.00 = $30.00 billed.
    # Calls at $0.50: $20.00 + $5.00 = $25.00 (−$5.00). Viewers may simulate: nothing is billed.
    params = {"run": "1", "plan": "metered", "charges": HALF_PRICE, "current_plan": "metered",
              "from": "2026-01-01", "to": "2026-02-01"}
    page = _text(viewer_client.get("/simulation/", params))
    rows = re.search(r'<tr data-subscription="acme-main">(.*?)</tr>', page).group(1)
    assert re.findall(r'<td class="r">([^<]+)</td>', rows) == ["$30.00", "$25.00", "-$5.00"]
    assert "Self-check: <span class=\"badge s-paid\">passed</span>" in page
    assert "reproduces what was billed ($30.00)" in page
    assert 'id="simulation-csv"' in page

    body = viewer_client.get("/simulation/export.csv", params)
    assert body["Content-Type"].startswith("text/csv")
    got = list(csv.reader(io.StringIO(body.content.decode())))
    assert got == [["subscription", "customer", "currency", "actual", "simulated", "delta"],
                   ["acme-main", "acme", "USD", "30.00", "25.00", "-5.00"],
                   ["total", "", "USD", "30.00", "25.00", "-5.00"]]


def test_new_base_fee_for_listed_subscriptions_equals_the_api(books, viewer_client, billing_api):
    # A $25.00 base fee instead of $20.00: $25.00 + $10.00 = $35.00 (+$5.00).
    params = {"run": "1", "plan": "metered", "amount": "25.00", "subscriptions": "acme-main",
              "from": "2026-01-01", "to": "2026-02-01"}
    page = _text(viewer_client.get("/simulation/", params))
    api = billing_api.post("/api/v1/simulations/", {
        "plan": {"currency": "USD", "amount": "25.00", "charges": [
            {"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "1.00"}}]},
        "subscriptions": ["acme-main"], "from": "2026-01-01", "to": "2026-02-01"}, format="json").json()
    assert api["totals"]["simulated"] == "35.00"
    rows = re.search(r'<tr data-subscription="acme-main">(.*?)</tr>', page).group(1)
    assert re.findall(r'<td class="r">([^<]+)</td>', rows) == ["$30.00", "$35.00", "$5.00"]


def test_bad_input_names_the_field(books, viewer_client):
    base = {"run": "1", "current_plan": "metered", "from": "2026-01-01", "to": "2026-02-01"}
    for extra, expected in [({"plan": ""}, "plan: choose the candidate plan"),
                            ({"plan": "metered", "from": "soon"}, "from: a date (YYYY-MM-DD) is required."),
                            ({"plan": "nope"}, "No plan 'nope'."),
                            ({"plan": "metered", "charges": "[{"}, "charges: a JSON list"),
                            ({"plan": "metered", "charges": '[{"billable_metric": "calls", "model": "magic"}]'},
                             "plan.charges[0].model"),
                            ({"plan": "metered", "current_plan": "", "subscriptions": "ghost"}, "Unknown subscription(s): ghost")]:
        response = viewer_client.get("/simulation/", {**base, **extra})
        assert response.status_code == 200
        assert expected in _text(response), (extra, expected)
    assert viewer_client.get("/simulation/export.csv", {**base, "plan": "nope"}).status_code == 400


def test_simulation_is_in_the_navigation(viewer_client):
    assert 'href="/simulation/"' in viewer_client.get("/").content.decode()
