"""The analytics API (API.md "Analytics"): the MRR bridge, summary, cohorts, usage revenue and AR
aging with hand-computed figures, as JSON and as CSV; scopes and bad input."""

import csv
import io
from datetime import date
from decimal import Decimal

import pytest

from invoicing.models import Invoice, InvoiceLine
from invoicing.services import invoice_mark_paid
from tests.analytics.test_mrr_scenario import EXPECTED_USD, run_scenario
from tests.customers.factories import CustomerFactory

pytestmark = pytest.mark.django_db
D = date
_numbers = iter(range(1, 10_000))


def invoice(customer, *, status="finalized", total, due, issued=None, currency=None, lines=()):
    currency = currency or customer.currency
    inv = Invoice.objects.create(
        customer=customer, currency=currency, status=status, number=f"T-{next(_numbers):05d}",
        billing_date=issued or due, issue_date=issued or due, due_date=due, subtotal=Decimal(total),
        total=Decimal(total), amount_due=Decimal(total) if status in ("finalized", "uncollectible") else Decimal(0))
    for kind, amount, start in lines:
        InvoiceLine.objects.create(invoice=inv, kind=kind, description=kind, amount=Decimal(amount), period_start=start,
                                   period_end=start.replace(day=28))
    return inv


def test_mrr_bridge_json_and_csv(reader_api):
    run_scenario()
    body = reader_api.get("/api/v1/analytics/mrr/?from=2026-01&to=2026-08&currency=USD").json()
    got = [(r["month"], r["mrr"], r["new"], r["expansion"], r["contraction"], r["churn"], r["reactivation"], r["customers"])
           for r in body["results"]]
    assert got == EXPECTED_USD
    for response in (reader_api.get("/api/v1/analytics/mrr/?from=2026-01&to=2026-08&currency=USD&format=csv"),
                     reader_api.get("/api/v1/analytics/mrr.csv?from=2026-01&to=2026-08&currency=usd")):
        assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.content.decode())))
        assert [(r["month"], r["mrr"], r["contraction"]) for r in rows][3] == ("2026-04", "220.00", "150.00")
        assert len(rows) == 8


def test_summary_api_rates_are_decimal_fraction_strings(reader_api):
    run_scenario()
    body = reader_api.get("/api/v1/analytics/summary/?month=2026-06&currency=USD").json()
    assert {k: body[k] for k in ("mrr", "arr", "customers", "arpa", "logo_churn_rate", "revenue_churn_rate", "nrr", "grr",
                                 "usage_revenue")} == {
        "mrr": "250.00", "arr": "3000.00", "customers": 3, "arpa": "83.33", "logo_churn_rate": "0.25",
        "revenue_churn_rate": "0.2857", "nrr": "0.7143", "grr": "0.7143", "usage_revenue": "0.00"}
    empty = reader_api.get("/api/v1/analytics/summary/?month=2025-06&currency=USD").json()
    assert (empty["mrr"], empty["nrr"], empty["logo_churn_rate"], empty["arpa"]) == ("0.00", None, None, None)


def test_cohorts_nrr_and_grr(reader_api):
    run_scenario()
    body = reader_api.get("/api/v1/analytics/cohorts/?from=2026-01&currency=USD").json()
    cohorts = {c["cohort"]: c for c in body["cohorts"]}
    jan = cohorts["2026-01"]  # A: 100 → 240 (Feb) → 100 (Apr) → 0 (Jun) → 50 (Aug)
    assert (jan["customers"], jan["mrr"]) == (1, "100.00")
    by_month = {m["month"]: (m["mrr"], m["nrr"], m["grr"]) for m in jan["months"]}
    assert by_month["2026-02"] == ("240.00", "2.40", "1.00")
    assert by_month["2026-06"] == ("0.00", "0.00", "0.00")
    assert by_month["2026-08"] == ("50.00", "0.50", "0.50")
    # MRR holds after the ledger's last movement (August): offsets run to the current month, at most 12.
    from analytics.mrr import month_start

    last = min(D(2027, 1, 1), max(D(2026, 8, 1), month_start(date.today())))
    assert jan["months"][-1]["month"] == f"{last:%Y-%m}" and by_month[f"{last:%Y-%m}"] == ("50.00", "0.50", "0.50")
    assert len(jan["months"]) == 1 + (last.year - 2026) * 12 + last.month - 1
    april = cohorts["2026-04"]  # C (new Apr, 30) only: B is a March customer
    assert (april["customers"], april["mrr"]) == (1, "30.00")
    assert cohorts["2026-02"]["customers"] == 0


def test_ar_aging_buckets_tie_to_amount_due_per_currency(reader_api):
    a, b = CustomerFactory(external_id="ar_a"), CustomerFactory(external_id="ar_b")
    eur = CustomerFactory(external_id="ar_eur", currency="EUR")
    as_of = D(2026, 6, 30)
    invoice(a, total="100.00", due=D(2026, 7, 10), issued=D(2026, 6, 10))   # not yet due: current
    invoice(a, total="50.25", due=D(2026, 6, 30))                            # due today: current
    invoice(a, total="20.00", due=D(2026, 6, 29))                            # 1 day: 1_30
    invoice(b, total="30.10", due=D(2026, 5, 31))                            # 30 days: 1_30
    invoice(b, total="40.00", due=D(2026, 5, 30))                            # 31 days: 31_60
    invoice(b, total="60.00", due=D(2026, 4, 1))                             # 90 days: 61_90
    invoice(b, total="70.00", due=D(2026, 3, 31))                            # 91 days: over_90
    partly = invoice(b, total="80.00", due=D(2026, 6, 1))                    # 29 days, 30.00 paid → 50.00 in 1_30
    invoice_mark_paid(invoice=partly, amount=Decimal("30.00"), paid_on=D(2026, 6, 15))
    invoice(a, status="paid", total="999.00", due=D(2026, 1, 1))             # paid: nothing due
    invoice(a, status="void", total="888.00", due=D(2026, 1, 1))             # void: excluded
    invoice(b, status="uncollectible", total="77.00", due=D(2026, 1, 1))     # apart
    invoice(a, total="5.00", due=D(2026, 7, 30), issued=D(2026, 7, 1))       # issued after as_of
    invoice(eur, total="12.34", due=D(2026, 6, 1))                           # other currency
    body = reader_api.get("/api/v1/analytics/ar_aging/?as_of=2026-06-30&currency=USD").json()
    assert body["buckets"] == {"current": "150.25", "1_30": "100.10", "31_60": "40.00", "61_90": "60.00", "over_90": "70.00"}
    assert (body["as_of"], body["currency"], body["uncollectible"], body["total"]) == ("2026-06-30", "USD", "77.00", "420.35")
    assert body["customers"] == [
        {"customer": "ar_a", "current": "150.25", "1_30": "20.00", "31_60": "0.00", "61_90": "0.00", "over_90": "0.00",
         "total": "170.25"},
        {"customer": "ar_b", "current": "0.00", "1_30": "80.10", "31_60": "40.00", "61_90": "60.00", "over_90": "70.00",
         "total": "250.10"},
    ]
    open_due = sum(i.amount_due for i in Invoice.objects.filter(currency="USD", status="finalized", issue_date__lte=as_of))
    assert Decimal(body["total"]) == open_due
    eur_body = reader_api.get("/api/v1/analytics/ar_aging/?as_of=2026-06-30&currency=EUR").json()
    assert eur_body["buckets"]["1_30"] == "12.34" and eur_body["total"] == "12.34"
    rows = list(csv.DictReader(io.StringIO(reader_api.get("/api/v1/analytics/ar_aging.csv?as_of=2026-06-30&currency=USD")
                                           .content.decode())))
    assert rows[-1] == {"customer": "TOTAL", "current": "150.25", "1_30": "100.10", "31_60": "40.00", "61_90": "60.00",
                        "over_90": "70.00", "total": "420.35"}


def test_usage_revenue_by_service_month_and_run_rate(reader_api):
    c = CustomerFactory(external_id="use")
    invoice(c, total="0", due=D(2026, 2, 10), lines=[("usage", "30.00", D(2026, 1, 1)), ("subscription", "99.00", D(2026, 1, 1))])
    invoice(c, total="0", due=D(2026, 3, 10), lines=[("usage", "60.00", D(2026, 2, 1)), ("late_usage", "5.00", D(2026, 1, 1))])
    invoice(c, total="0", due=D(2026, 4, 10), lines=[("usage", "90.00", D(2026, 3, 1))])
    invoice(c, status="void", total="0", due=D(2026, 4, 10), lines=[("usage", "1000.00", D(2026, 3, 1))])
    invoice(c, status="draft", total="0", due=D(2026, 4, 10), lines=[("usage", "1000.00", D(2026, 3, 1))])
    body = reader_api.get("/api/v1/analytics/usage_revenue/?from=2026-01&to=2026-04&currency=USD").json()
    assert [(r["month"], r["usage_revenue"], r["run_rate_3m"]) for r in body["results"]] == [
        ("2026-01", "35.00", "11.67"),   # 35 / 3
        ("2026-02", "60.00", "31.67"),   # 95 / 3
        ("2026-03", "90.00", "61.67"),   # 185 / 3
        ("2026-04", "0.00", "50.00"),    # 150 / 3
    ]
    assert reader_api.get("/api/v1/analytics/summary/?month=2026-03&currency=USD").json()["usage_revenue"] == "90.00"


@pytest.mark.parametrize("url, field", [
    ("/api/v1/analytics/mrr/?from=2026-13&currency=USD", "from"),
    ("/api/v1/analytics/mrr/?from=2026-05&to=2026-01&currency=USD", "from"),
    ("/api/v1/analytics/mrr/?from=2000-01&to=2026-01&currency=USD", "from"),
    ("/api/v1/analytics/summary/?month=June&currency=USD", "month"),
    ("/api/v1/analytics/summary/?month=2026-06&currency=XXQ", "currency"),
    ("/api/v1/analytics/ar_aging/?as_of=2026-02-30&currency=USD", "as_of"),
    ("/api/v1/analytics/forecast/?months=0&currency=USD", "months"),
])
def test_bad_input_is_a_400_naming_the_field(reader_api, url, field):
    response = reader_api.get(url)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_currency_required_when_customers_pay_in_several(reader_api):
    CustomerFactory(currency="USD"), CustomerFactory(currency="EUR")
    response = reader_api.get("/api/v1/analytics/mrr/")
    assert response.status_code == 400 and "currency" in response.json()["error"]["fields"]


def test_scopes(anon_api, usage_api, reader_api):
    assert anon_api.get("/api/v1/analytics/summary/?currency=USD").status_code == 401
    assert usage_api.get("/api/v1/analytics/summary/?currency=USD").status_code == 403
    assert reader_api.get("/api/v1/analytics/summary/?currency=USD").status_code == 200


def test_ledger_follows_changes_made_through_the_subscriptions_api(billing_api, reader_api):
    def ok(response, status=(200, 201)):
        assert response.status_code in status, response.content
        return response.json()

    for code, amount in (("std", "100.00"), ("plus", "250.00")):
        ok(billing_api.post("/api/v1/plans/", {"code": code, "name": code, "currency": "USD", "interval": "month",
                                               "amount": amount, "charges": []}, format="json"))
    ok(billing_api.post("/api/v1/customers/", {"external_id": "api_x", "name": "X", "currency": "USD"}, format="json"))
    ok(billing_api.post("/api/v1/subscriptions/", {"external_id": "api_x1", "customer": "api_x", "plan": "std",
                                                   "start_date": "2026-01-01"}, format="json"))
    base = "/api/v1/subscriptions/api_x1"
    ok(billing_api.post(f"{base}/change_plan/", {"plan": "plus", "date": "2026-03-15"}, format="json"))  # upgrade now
    ok(billing_api.post(f"{base}/change_plan/", {"plan": "std", "date": "2026-05-10"}, format="json"))   # Jun 1
    ok(billing_api.post(f"{base}/cancel/", {"at": "period_end", "date": "2026-07-04"}, format="json"))   # Aug 1
    body = ok(reader_api.get("/api/v1/analytics/mrr/?from=2026-01&to=2026-08&currency=USD"))
    assert [(r["month"], r["mrr"], r["new"], r["expansion"], r["contraction"], r["churn"], r["customers"])
            for r in body["results"] if r["month"] in ("2026-01", "2026-03", "2026-06", "2026-07", "2026-08")] == [
        ("2026-01", "100.00", "100.00", "0.00", "0.00", "0.00", 1),
        ("2026-03", "250.00", "0.00", "150.00", "0.00", "0.00", 1),
        ("2026-06", "100.00", "0.00", "0.00", "150.00", "0.00", 1),
        ("2026-07", "100.00", "0.00", "0.00", "0.00", "0.00", 1),
        ("2026-08", "0.00", "0.00", "0.00", "0.00", "100.00", 0),
    ]
