"""Anomaly detection (DESIGN.md §12, API.md "Usage intelligence"): the engine on hand-made series,
the scan command's cursor and idempotency, the review queue at billing runs, dismiss/confirm and the
memory of dismissals."""

from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.core.management import call_command

from analytics.anomalies import anomalies_detect, score_series
from analytics.models import Anomaly, AnomalyScan
from common.models import AuditEvent

pytestmark = pytest.mark.django_db
MON = date(2026, 1, 5)  # a Monday


def flags(values, days_idx, first=MON):
    values = np.array(values, dtype=float)
    found = score_series(values=values, first_day=first, days=[first + timedelta(days=i) for i in days_idx], threshold=5)
    return [((d - first).days, kind, observed, expected, round(score, 4)) for d, kind, observed, expected, score, _ in found]


def test_flat_series_spike_drop_zero_and_noise_by_hand():
    base = [100.0] * 28
    # expected 100 (median of the 4 same-weekday days), MAD 0 → spread = max(0, 10 % of 100, 1) = 10
    assert flags(base + [400], [28]) == [(28, "spike", 400, 100, 30.0)]
    assert flags(base + [40], [28]) == [(28, "drop", 40, 100, -6.0)]
    assert flags(base + [0], [28]) == [(28, "zero_usage", 0, 100, -10.0)]
    assert flags(base + [149], [28]) == []  # score 4.9 < 5
    assert flags(base + [60], [28]) == []  # score −4, and 60 > half of 100


def test_one_flag_per_episode():
    base = [100.0] * 28
    # a three-day outage is one anomaly (its first day); so is a level shift down
    assert flags(base + [0, 0, 0], [28, 29, 30]) == [(28, "zero_usage", 0, 100, -10.0)]
    assert [f[:2] for f in flags(base + [20] * 5, [28, 29, 30, 31, 32])] == [(28, "drop")]
    # a normal day in between, or a change of direction, starts a new episode
    assert [f[:2] for f in flags(base + [0, 100, 0], [28, 29, 30])] == [(28, "zero_usage"), (30, "zero_usage")]
    assert [f[:2] for f in flags(base + [400, 0], [28, 29])] == [(28, "spike"), (29, "zero_usage")]
    # the episode is read from the data, not from earlier flags: scoring day 29 alone says the same
    assert flags(base + [0, 0], [29]) == []


def test_fourteen_days_of_history_before_a_flag():
    assert flags([10.0] * 13 + [90], [13]) == []
    # day 14: window = 14 days of 10 → expected 10, spread max(0, 1, 1, √10) = 3.1623, score 80 / √10
    assert flags([10.0] * 14 + [90], [14]) == [(14, "spike", 90, 10, 25.2982)]


def test_weekday_aware_baseline():
    week = [100, 100, 100, 100, 100, 10, 10]  # Mon..Fri busy, weekend quiet
    values = week * 4
    # weekday model (its residuals are all 0; the flat model's are 90 on 8 weekend days)
    # a quiet Saturday is normal; a busy Saturday is a spike: expected 10 (Saturdays); spread =
    # max(0, 10 % of max(10, 100 / 4) = 2.5, 1, √10) = 3.1623 → score 90 / 3.1623 = 28.4605
    assert flags(values + week, [33]) == []
    assert flags(values + week[:5] + [100], [33]) == [(33, "spike", 100, 10, 28.4605)]
    # a quiet Monday is a drop: expected 100, score (10 − 100) / 10 = −9
    assert flags(values + [10], [28]) == [(28, "drop", 10, 100, -9.0)]


def test_noisy_series_without_a_weekly_pattern_uses_the_flat_model():
    values = [90.0, 110.0] * 14  # every weekday sees 90, 110, 90, 110
    # weekday model, leave one out: a 90 against median(90, 110, 110) = 110 → −20, a 110 → +20: mean 20;
    # flat model: against the window median 100 → ±10: mean 10 → flat. Expected 100, MAD 10,
    # spread = max(1.4826 × 10, 10 % of 100, 1, √100) = 14.826
    assert flags(values + [180], [28]) == [(28, "spike", 180, 100, 5.3959)]  # 80 / 14.826
    assert flags(values + [20], [28]) == [(28, "drop", 20, 100, -5.3959)]
    assert flags(values + [30], [28]) == []  # −70 / 14.826 = −4.72 > −5
    found = score_series(values=np.array(values + [180]), first_day=MON, days=[MON + timedelta(days=28)], threshold=5)
    assert {k: found[0][5][k] for k in ("model", "mad", "spread")} == {"model": "flat", "mad": 10, "spread": 14.826}


def test_sparse_series_is_not_scored():
    values = ([0.0] * 6 + [30.0]) * 4  # one burst of 30 a week: usage on 4 of 28 days
    assert flags(values + [0, 0, 0, 0, 0, 0, 500], [34]) == []
    half = ([5.0, 0.0]) * 14  # usage on exactly half the days is dense enough: median 2.5 … the weekday rule
    assert flags(half + [500], [28]) != []


# --- through the database ------------------------------------------------------------------------

def _jan(world, spike_day=25, spike=60):
    world.metric("calls")
    world.plan("metered", pay_in_advance=False,
               charges=[{"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "1"}}])
    world.customer("c1")
    world.subscription("s1", customer="c1", plan="metered", start_date=date(2026, 1, 1))
    stamps = []
    for day in range(1, 32):
        n = spike if day == spike_day else 10
        stamps += [f"2026-01-{day:02d}T{h % 24:02d}:{h // 24:02d}:00Z" for h in range(n)]
    world.events("calls", stamps, customer="c1")


def test_detect_command_flags_the_spike_once_with_its_inputs(world, billing_api):
    _jan(world)
    call_command("detect_anomalies", "--as-of", "2026-01-31")
    scan = AnomalyScan.objects.get()
    assert (scan.as_of, scan.days_scored) == (date(2026, 1, 31), 35)  # first scan: 35 days back
    a = Anomaly.objects.get()
    # Jan 25 (index 24): window Jan 1–24 all 10 → expected 10, spread √10 (counting noise), score 50 / √10
    assert (a.kind, a.date, a.observed, a.expected, a.score) == ("spike", date(2026, 1, 25), 60, 10, Decimal("15.8114"))
    assert a.method == "robust_weekday_mad_v2" and a.inputs["window_days"] == 24
    audit = AuditEvent.objects.get(action="anomaly.detected")
    assert (audit.object_type, audit.object_id) == ("analytics.anomaly", str(a.pk))
    from webhooks.payloads import event_data  # what the anomaly.detected webhook carries

    payload = event_data(object_type=audit.object_type, object_id=audit.object_id, inputs=audit.inputs)
    assert (payload["id"], payload["kind"], payload["observed"], payload["status"]) == (a.pk, "spike", "60", "open")

    call_command("detect_anomalies", "--as-of", "2026-01-31")  # rerun: nothing new
    assert Anomaly.objects.count() == 1 and AuditEvent.objects.filter(action="anomaly.detected").count() == 1
    call_command("detect_anomalies", "--as-of", "2026-02-02")  # next scan: only the days since
    assert AnomalyScan.objects.order_by("-as_of").first().days_scored == 2

    body = billing_api.get("/api/v1/anomalies/?customer=c1&status=open&kind=spike").json()
    row = body["results"][0]
    assert {k: row[k] for k in ("customer", "subscription", "billable_metric", "date", "kind", "observed", "expected",
                                "score", "method", "status")} == {
        "customer": "c1", "subscription": "s1", "billable_metric": "calls", "date": "2026-01-25", "kind": "spike",
        "observed": "60", "expected": "10", "score": "15.8114", "method": "robust_weekday_mad_v2", "status": "open"}
    assert billing_api.get("/api/v1/anomalies/?status=dismissed").json()["results"] == []
    assert billing_api.get("/api/v1/anomalies/?status=nope").status_code == 400


def test_billing_run_holds_the_draft_with_the_anomaly_as_reason(world):
    _jan(world)
    world.run(date(2026, 2, 1))  # detection runs inside the billing run: no scan needed before
    (inv,) = world.invoices(subscription="s1")
    assert (inv["status"], inv["total"], inv["needs_review"]) == ("draft", "360.00", True)  # 30 × 10 + 60
    (reason,) = inv["review_reasons"]
    a = Anomaly.objects.get()
    assert reason["rule"] == "anomaly.spike" and reason["anomaly"] == a.pk and reason["date"] == "2026-01-25"
    assert AuditEvent.objects.filter(action="invoice.flagged", object_id=inv["id"], rule="anomaly.spike").count() == 1


def test_normal_month_is_not_held(world):
    _jan(world, spike=10)
    world.run(date(2026, 2, 1))
    (inv,) = world.invoices(subscription="s1")
    assert (inv["status"], inv["needs_review"], inv["total"]) == ("finalized", False, "310.00")
    assert not Anomaly.objects.exists()


def test_dismiss_confirm_and_memory(world, billing_api, reader_api):
    _jan(world)
    anomalies_detect(as_of=date(2026, 1, 31))
    a = Anomaly.objects.get()
    assert reader_api.post(f"/api/v1/anomalies/{a.pk}/dismiss/").status_code == 403
    r = billing_api.post(f"/api/v1/anomalies/{a.pk}/dismiss/", {"note": "launch day"}, format="json")
    assert r.status_code == 200 and r.json()["status"] == "dismissed"
    assert billing_api.post(f"/api/v1/anomalies/{a.pk}/confirm/").status_code == 409
    assert billing_api.post("/api/v1/anomalies/999999/dismiss/").status_code == 404
    assert AuditEvent.objects.filter(action="anomaly.dismissed", object_id=str(a.pk)).count() == 1

    # February: 10 a day, 70 on Feb 10 (≤ 1.25 × the dismissed 60: same pattern), 100 on Feb 20 (new)
    stamps = []
    for day in range(1, 29):
        n = {10: 70, 20: 100}.get(day, 10)
        stamps += [f"2026-02-{day:02d}T{h % 24:02d}:{h // 24:02d}:00Z" for h in range(n)]
    world.events("calls", stamps, customer="c1")
    result = anomalies_detect(as_of=date(2026, 2, 28))
    assert result.suppressed == 1
    new = Anomaly.objects.exclude(pk=a.pk).get()
    assert (new.date, new.kind, new.observed) == (date(2026, 2, 20), "spike", 100)
    r = billing_api.post(f"/api/v1/anomalies/{new.pk}/confirm/")
    assert r.json()["status"] == "confirmed"


def test_a_spike_under_the_minimum_commitment_does_not_hold_the_draft(world):
    world.metric("calls")
    world.plan("committed", pay_in_advance=False, minimum_commitment="500.00",
               charges=[{"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "1"}}])
    world.customer("c1")
    world.subscription("s1", customer="c1", plan="committed", start_date=date(2026, 1, 1))
    stamps = []
    for day in range(1, 32):
        stamps += [f"2026-01-{day:02d}T{h % 24:02d}:{h // 24:02d}:00Z" for h in range(60 if day == 25 else 10)]
    world.events("calls", stamps, customer="c1")
    world.run(date(2026, 2, 1))
    (inv,) = world.invoices(subscription="s1")
    # 360 calls = 360.00, topped up by 140.00 to the 500.00 minimum: the spike changed nothing billed
    assert (inv["total"], inv["needs_review"], inv["status"]) == ("500.00", False, "finalized")
    a = Anomaly.objects.get()  # still listed for follow-up
    assert (a.kind, a.date, a.status) == ("spike", date(2026, 1, 25), "open")
