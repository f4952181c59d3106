"""Usage intelligence in the back office: anomalies list with dismiss / confirm (the analytics
services), the anomaly evidence in the review queue, the explanation on the invoice page."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.utils import timezone

from analytics.models import Anomaly
from catalog.models import BillableMetric
from invoicing.models import Invoice
from subscriptions.models import Subscription
from tests.backoffice.conftest import at


def _text(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def _anomaly(sub_ext: str, day: date, observed: str, expected: str, kind: str = "spike") -> Anomaly:
    sub = Subscription.objects.select_related("customer").get(external_id=sub_ext)
    return Anomaly.objects.create(customer=sub.customer, subscription=sub, billable_metric=BillableMetric.objects.get(code="calls"),
                                  date=day, kind=kind, observed=Decimal(observed), expected=Decimal(expected),
                                  score=Decimal("7.5"), method="robust z (median/MAD, weekday-aware)",
                                  detected_at=timezone.now())


def test_anomalies_list_dismiss_and_confirm(books, admin_client_bo, viewer_client):
    spike = _anomaly("acme-main", date(2026, 1, 2), "10", "1")
    drop = _anomaly("globex-main", date(2026, 1, 3), "0", "3", kind="drop")
    listing = viewer_client.get("/anomalies/")
    text = _text(listing)
    assert [a.pk for a in listing.context["rows"]] == [drop.pk, spike.pk]  # newest day first
    assert "Dismiss</button>" not in text and "acme-main" in text and "7.5" in text
    assert viewer_client.post(f"/anomalies/{spike.pk}/dismiss/", {"reason": "x"}).status_code == 403
    assert viewer_client.post(f"/anomalies/{spike.pk}/confirm/").status_code == 403
    assert Anomaly.objects.filter(status="open").count() == 2
    assert "Dismiss</button>" in _text(admin_client_bo.get("/anomalies/"))
    done = _text(admin_client_bo.post(f"/anomalies/{spike.pk}/dismiss/", {"reason": "launch week", "next": "/anomalies/"},
                                      follow=True))
    assert f"Anomaly {spike.pk} (spike on Jan 2, 2026) dismissed" in done
    spike.refresh_from_db()
    assert (spike.status, spike.resolved_by, spike.note) == ("dismissed", "user:fin-admin", "launch week")
    again = _text(admin_client_bo.post(f"/anomalies/{spike.pk}/confirm/", follow=True))
    assert "only an open anomaly" in again and Anomaly.objects.get(pk=spike.pk).status == "dismissed"
    admin_client_bo.post(f"/anomalies/{drop.pk}/confirm/")
    assert Anomaly.objects.get(pk=drop.pk).status == "confirmed"
    assert [a.pk for a in viewer_client.get("/anomalies/").context["rows"]] == []  # open only by default
    assert [a.pk for a in viewer_client.get("/anomalies/?status=&kind=drop").context["rows"]] == [drop.pk]
    assert [a.pk for a in viewer_client.get("/anomalies/?status=dismissed&customer=acme").context["rows"]] == [spike.pk]
    assert 'data-nav="anomalies"' in _text(viewer_client.get("/"))


def test_review_queue_shows_the_anomalies_of_the_draft_period(world, admin_client_bo):
    """An open anomaly on a January usage day holds January's draft at the billing run; the review
    queue shows it as evidence next to the reason and it can be dismissed there."""
    world.metric("calls")
    world.plan("metered", pay_in_advance=False,
               charges=[{"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "1.00"}}])
    world.customer("acme")
    world.subscription("acme-main", customer="acme", plan="metered", start_date=date(2026, 1, 1))
    world.events("calls", [at(1, 2, h) for h in range(10)], customer="acme")
    spike = _anomaly("acme-main", date(2026, 1, 2), "10", "1")
    world.run(date(2026, 2, 1), finalize=False)
    draft = Invoice.objects.get(subscription__external_id="acme-main")
    assert draft.needs_review
    review = admin_client_bo.get("/review/")
    text = _text(review)
    (item,) = review.context["items"]
    assert spike.pk in [a.pk for a in item["anomalies"]] and f'data-anomaly="{spike.pk}"' in text
    admin_client_bo.post(f"/anomalies/{spike.pk}/dismiss/", {"reason": "known batch job", "next": "/review/"})
    assert Anomaly.objects.get(pk=spike.pk).status == "dismissed"
    assert spike.pk not in [a.pk for a in admin_client_bo.get("/review/").context["items"][0]["anomalies"]]


def test_invoice_page_shows_the_explanation(books, viewer_client, billing_api):
    acme = books["acme-main"]
    response = viewer_client.get(f"/invoices/{acme}/")
    text = _text(response)
    api = billing_api.get(f"/api/v1/invoices/{acme}/explanation/").json()
    assert response.context["explanation"] == api
    assert 'id="explanation"' in text and "subtotal 30.00 USD" in api["summary"] and api["summary"] in text.replace("&#x27;", "'")


def test_invoice_page_shows_the_anomaly_evidence_and_its_actions(world, admin_client_bo, viewer_client):
    """The held draft's page: the reason in words, the anomaly's kind, score, observed / expected and
    its baseline inputs as labelled text (not JSON), and dismiss / confirm for admins only."""
    import html
    import re

    world.metric("calls")
    world.plan("metered", pay_in_advance=False,
               charges=[{"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "1.00"}}])
    world.customer("acme")
    world.subscription("acme-main", customer="acme", plan="metered", start_date=date(2026, 1, 1))
    world.events("calls", [at(1, 2, h) for h in range(10)], customer="acme")
    spike = _anomaly("acme-main", date(2026, 1, 2), "10", "1")
    spike.inputs = {"window": ["2025-12-05", "2026-01-01"], "same_weekday_values": [1, 1, 2, 1], "window_median": 1,
                    "mad": 0.5, "threshold": 5.0}
    spike.save()
    world.run(date(2026, 2, 1), finalize=False)
    draft = Invoice.objects.get(subscription__external_id="acme-main")
    page = html.unescape(re.sub(r"\s+", " ", _text(admin_client_bo.get(f"/invoices/{draft.pk}/"))))
    assert 'id="review-reasons"' in page and "A usage spike in this period (anomaly detection)" in page
    section = page.split('id="invoice-anomalies"')[1].split("</section>")[0]
    assert f'data-anomaly="{spike.pk}"' in section and ">spike<" in section and "7.5" in section
    for label, value in [("Window", "2025-12-05, 2026-01-01"), ("Same weekday values", "1, 1, 2, 1"),
                         ("Window median", "1"), ("Mad", "0.5"), ("Threshold", "5.0")]:
        assert f"<dt>{label}</dt><dd>{value}</dd>" in section, label
    assert "Dismiss</button>" in section and "Confirm</button>" in section
    viewer = _text(viewer_client.get(f"/invoices/{draft.pk}/"))
    assert f'data-anomaly="{spike.pk}"' in viewer and "Dismiss</button>" not in viewer
    admin_client_bo.post(f"/anomalies/{spike.pk}/confirm/", {"next": f"/invoices/{draft.pk}/"})
    assert Anomaly.objects.get(pk=spike.pk).status == "confirmed"
