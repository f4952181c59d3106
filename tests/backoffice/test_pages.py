"""Back-office pages through Django's test client: roles, CSRF, every action through its service,
money formatting, search. The browser tests (test_browser.py) drive the same pages in Chromium."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from common.models import AuditEvent
from customers.models import Customer
from invoicing.models import BillingRun, CreditNote, Invoice, InvoiceStatus
from payments.models import Payment
from tests.backoffice.conftest import PASSWORD
from usage.models import DeadLetterEvent

pytestmark = pytest.mark.django_db


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


# --- sign-in, roles, CSRF ------------------------------------------------------------------------

def test_create_finance_user_sets_role_and_password_and_is_rerunnable(db):
    call_command("create_finance_user", "ann", "--role", "viewer", "--password", "pw-one-two")
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(username="ann")
    assert user.is_staff and user.check_password("pw-one-two")
    assert list(user.groups.values_list("name", flat=True)) == ["finance-viewer"]
    call_command("create_finance_user", "ann", "--role", "admin", "--password", "pw-three")
    user.refresh_from_db()
    assert user.check_password("pw-three") and list(user.groups.values_list("name", flat=True)) == ["finance-admin"]
    with pytest.raises(CommandError):
        call_command("create_finance_user", "bob", "--role", "owner", "--password", "x")


def test_anonymous_is_sent_to_sign_in_and_can_sign_in(finance_admin):
    client = Client()
    response = client.get("/invoices/")
    assert response.status_code == 302 and response["Location"] == "/login/?next=/invoices/"
    page = client.get("/login/")
    assert page.status_code == 200 and b'name="csrfmiddlewaretoken"' in page.content
    bad = client.post("/login/", {"username": "fin-admin", "password": "wrong"})
    assert bad.status_code == 200 and b"didn't match" in bad.content
    good = client.post("/login/", {"username": "fin-admin", "password": PASSWORD, "next": "/invoices/"})
    assert good.status_code == 302 and good["Location"] == "/invoices/"
    assert client.get("/").status_code == 200
    client.post("/logout/")
    assert client.get("/").status_code == 302
    plain = client.post("/login/", {"username": "fin-admin", "password": PASSWORD})
    assert plain.status_code == 302 and plain["Location"] == "/"


def test_staff_outside_the_finance_groups_is_refused(db):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("outsider", password="x", is_staff=True)
    client = Client()
    client.force_login(user)
    assert client.get("/").status_code == 403


def test_viewer_sees_every_page_and_no_action_and_every_action_is_403(books, viewer_client):
    acme = books["acme-main"]
    for url in ["/", "/customers/", "/customers/acme/", "/invoices/", f"/invoices/{acme}/", "/review/",
                "/billing-runs/", "/dead-letters/", "/search/?q=acme", "/revenue/", "/revenue/journal/", "/payments/",
                "/anomalies/", "/dunning/"]:
        response = viewer_client.get(url)
        assert response.status_code == 200, url
        assert b"<button class=\"primary\"" not in response.content, url
    detail = _text(viewer_client.get(f"/invoices/{acme}/"))
    assert "read-only access" in detail and "Record payment</button>" not in detail
    for action in ["approve", "finalize", "void", "pay", "credit", "uncollectible", "resend"]:
        assert viewer_client.post(f"/invoices/{acme}/{action}/", {"amount": "1.00", "reason": "x"}).status_code == 403
    assert viewer_client.post("/billing-runs/start/", {"as_of": "2026-03-01"}).status_code == 403
    letter = DeadLetterEvent.objects.create(raw_body="{}", reason="invalid", message="bad")
    assert viewer_client.post(f"/dead-letters/{letter.pk}/replay/").status_code == 403
    invoice = Invoice.objects.get(pk=acme)
    assert (invoice.status, invoice.amount_paid, BillingRun.objects.count()) == ("finalized", Decimal("0"), 1)


def test_actions_refuse_get_and_require_csrf(books, finance_admin):
    client = Client(enforce_csrf_checks=True)
    client.force_login(finance_admin)
    acme = books["acme-main"]
    assert client.get(f"/invoices/{acme}/pay/").status_code == 405
    assert client.post(f"/invoices/{acme}/pay/", {"amount": "1.00"}).status_code == 403  # no CSRF token
    page = client.get(f"/invoices/{acme}/")
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content).group(1).decode()
    ok = client.post(f"/invoices/{acme}/pay/", {"amount": "1.00", "csrfmiddlewaretoken": token})
    assert ok.status_code == 302
    assert Invoice.objects.get(pk=acme).amount_paid == Decimal("1.00")


# --- invoice workspace ---------------------------------------------------------------------------

def test_invoice_page_formats_money_per_currency_and_shows_lines(books, admin_client_bo):
    acme = _text(admin_client_bo.get(f"/invoices/{books['acme-main']}/"))
    assert "INV-2026-000001" in acme and "$30.00" in acme and "$20.00" in acme and "$10.00" in acme
    assert "30.0000" not in acme and "Jan 1, 2026 – Jan 31, 2026" in acme
    globex = _text(admin_client_bo.get(f"/invoices/{books['globex-main']}/"))
    assert "¥1,500" in globex and "1500.0000" not in globex
    listing = _text(admin_client_bo.get("/invoices/?currency=JPY"))
    assert "¥1,500" in listing and "INV-2026-000001" not in listing


def test_invoice_csv_follows_the_filters(books, viewer_client):
    response = viewer_client.get("/invoices/export.csv?currency=JPY")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = [line.split(",") for line in response.content.decode().strip().splitlines()]
    assert rows[0][:3] == ["number", "status", "customer"] and len(rows) == 2
    from common.timeutil import local_date

    issued = local_date(timezone.now(), "UTC")  # finalized today, in the customer's timezone (UTC)
    assert rows[1] == ["INV-2026-000002", "finalized", "globex", "Globex", "globex-main", "JPY", issued.isoformat(),
                       (issued + timedelta(days=30)).isoformat(), "2026-01-01", "2026-01-31", "1500", "0", "0",
                       "1500", "0", "1500"]
    Customer.objects.filter(external_id="globex").update(name="=HYPERLINK(1)")
    assert "'=HYPERLINK(1)" in viewer_client.get("/invoices/export.csv?currency=JPY").content.decode()


def test_invoice_pdf_is_served_inline_to_signed_in_staff_only(books, viewer_client):
    url = f"/invoices/{books['acme-main']}/pdf/"
    response = viewer_client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF") and response["Content-Disposition"].startswith("inline")
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert Client().get(url).status_code == 302


def test_record_partial_then_full_payment(books, admin_client_bo, finance_admin):
    acme = books["acme-main"]
    response = admin_client_bo.post(f"/invoices/{acme}/pay/", {"amount": "12.50", "paid_on": "2026-02-10",
                                                               "reference": "wire 7", "method": "check"}, follow=True)
    text = _text(response)
    assert "Recorded a check payment of $12.50 on INV-2026-000001; $17.50 remains due (finalized)." in text
    too_much = _text(admin_client_bo.post(f"/invoices/{acme}/pay/", {"amount": "17.51"}, follow=True))
    assert "exceeds the amount due" in too_much
    admin_client_bo.post(f"/invoices/{acme}/pay/", {"amount": ""})
    invoice = Invoice.objects.get(pk=acme)
    assert (invoice.status, invoice.amount_paid, invoice.amount_due) == ("paid", Decimal("30.00"), Decimal("0.00"))
    # Recorded through the payments service (payments.Payment), as POST /invoices/{id}/payments/ does.
    payments = list(Payment.objects.filter(invoice=invoice).order_by("created_at").values_list(
        "amount", "paid_on", "reference", "method", "status", "recorded_by"))
    assert payments[0] == (Decimal("12.50"), date(2026, 2, 10), "wire 7", "check", "succeeded", "user:fin-admin")
    assert payments[1][:4] == (Decimal("17.50"), timezone.localdate(), "", "bank_transfer")
    page = _text(admin_client_bo.get(f"/invoices/{acme}/"))
    assert "<td>check" in page and "wire 7" in page and "$12.50" in page and "$17.50" in page
    event = AuditEvent.objects.filter(action="invoice.payment_recorded").order_by("created_at").first()
    assert event.actor == "user:fin-admin" and event.actor_user_id == finance_admin.pk


def test_issue_credit_note_reduces_amount_due(books, admin_client_bo):
    acme = books["acme-main"]
    text = _text(admin_client_bo.post(f"/invoices/{acme}/credit/", {"amount": "5.00", "reason": "goodwill"},
                                      follow=True))
    note = CreditNote.objects.get(invoice_id=acme)
    assert f"Issued credit note {note.number} for $5.00" in text
    assert (note.total, note.outcome, note.reason) == (Decimal("5.00"), "reduce_amount_due", "goodwill")
    assert Invoice.objects.get(pk=acme).amount_due == Decimal("25.00")
    refused = _text(admin_client_bo.post(f"/invoices/{acme}/credit/", {"amount": "26.00", "reason": "x"}, follow=True))
    assert "remains creditable" in refused
    missing = _text(admin_client_bo.post(f"/invoices/{acme}/credit/", {"amount": "1.00"}, follow=True))
    assert "reason: This field is required." in missing and CreditNote.objects.count() == 1


def test_mark_uncollectible_then_void(books, admin_client_bo):
    globex = books["globex-main"]
    text = _text(admin_client_bo.post(f"/invoices/{globex}/uncollectible/", {"reason": "bankrupt"}, follow=True))
    assert "Marked INV-2026-000002 uncollectible (¥1,500 written off)." in text
    assert Invoice.objects.get(pk=globex).status == InvoiceStatus.UNCOLLECTIBLE
    again = _text(admin_client_bo.post(f"/invoices/{globex}/uncollectible/", follow=True))
    assert "Only a finalized invoice can be marked uncollectible" in again
    admin_client_bo.post(f"/invoices/{globex}/void/", {"reason": "duplicate"})
    assert Invoice.objects.get(pk=globex).status == InvoiceStatus.VOID
    page = _text(admin_client_bo.get(f"/invoices/{globex}/"))
    assert '<span class="badge s-void">void</span>' in page and "Nothing to do on a void invoice." in page
    assert "invoice.voided" in page and "invoice.marked_uncollectible" in page


def test_resend_sends_the_invoice_email(books, admin_client_bo):
    from django.core import mail

    text = _text(admin_client_bo.post(f"/invoices/{books['acme-main']}/resend/", {}, follow=True))
    assert "Sent INV-2026-000001 to ap@acme.test." in text
    assert mail.outbox[-1].to == ["ap@acme.test"] and mail.outbox[-1].attachments[0][2] == "application/pdf"


def test_review_queue_shows_reason_and_evidence_then_approve(world, admin_client_bo):
    from tests.backoffice.conftest import at

    world.metric("calls")
    world.plan("metered", pay_in_advance=False,
               charges=[{"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "1.00"}}])
    world.customer("initech")
    world.subscription("initech-1", customer="initech", plan="metered", start_date=date(2026, 1, 1))
    world.events("calls", [at(1, 5, h) for h in range(2)], customer="initech")
    world.run(date(2026, 2, 1))
    world.events("calls", [at(2, 5, h % 24) for h in range(20)], customer="initech")
    world.run(date(2026, 3, 1))
    flagged = Invoice.objects.get(subscription__external_id="initech-1", period_start=date(2026, 2, 1))
    assert flagged.status == "draft" and flagged.needs_review
    draft = _text(admin_client_bo.get(f"/invoices/{flagged.pk}/"))
    assert "Invoice (draft)" in draft and "awaiting review" in draft and "Approve and finalize" in draft
    assert "preview (watermarked)" in draft and "Record payment" not in draft
    text = _text(admin_client_bo.get("/review/"))
    assert "Usage raised the total past 3× the recent invoices (like for like)" in text and "$20.00" in text and "$2.00" in text
    dashboard = _text(admin_client_bo.get("/"))
    assert re.search(r'data-count="review"> <span class="num">1</span>', dashboard)
    done = _text(admin_client_bo.post(f"/invoices/{flagged.pk}/approve/", {"next": "/review/"}, follow=True))
    flagged.refresh_from_db()
    assert flagged.status == "finalized" and f"Approved and finalized as {flagged.number}." in done
    assert "No draft is waiting for review." in done


# --- billing runs, dead letters ------------------------------------------------------------------

def test_start_billing_run_from_the_page(world, admin_client_bo, django_capture_on_commit_callbacks):
    world.metric("calls")
    world.plan("metered", pay_in_advance=False,
               charges=[{"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "1.00"}}])
    world.customer("c1")
    world.subscription("s1", customer="c1", plan="metered", start_date=date(2026, 1, 1))
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_bo.post("/billing-runs/start/", {"as_of": "2026-02-01"})
    assert response.status_code == 302 and response["Location"] == "/billing-runs/?started=1"
    run = BillingRun.objects.get()  # the async form; Celery runs eagerly in tests, on commit
    assert (run.as_of, run.status, run.invoices_created, run.triggered_by) == (date(2026, 2, 1), "succeeded", 1,
                                                                                "user:fin-admin")
    page = _text(admin_client_bo.get(f"/billing-runs/{run.pk}/"))
    assert "Billing run #" in page and "C1" in page
    listing = admin_client_bo.get("/billing-runs/", HTTP_HX_REQUEST="true")
    assert b'data-status="succeeded"' in listing.content and b"every 2s" not in listing.content
    bad = _text(admin_client_bo.post("/billing-runs/start/", {"as_of": "not a date"}, follow=True))
    assert "as_of: Enter a valid date." in bad and BillingRun.objects.count() == 1


def test_billing_runs_table_polls_while_a_run_is_running(admin_client_bo):
    idle = admin_client_bo.get("/billing-runs/", HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in idle
    started = admin_client_bo.get("/billing-runs/?started=1").content.decode()
    assert 'hx-get="/billing-runs/?wait=14" hx-trigger="every 2s"' in started  # waits for the worker
    last = admin_client_bo.get("/billing-runs/?wait=1", HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-get="/billing-runs/?wait=0"' in last
    assert "hx-trigger" not in admin_client_bo.get("/billing-runs/?wait=0", HTTP_HX_REQUEST="true").content.decode()
    run = BillingRun.objects.create(as_of=date(2026, 3, 1), status="running")
    running = admin_client_bo.get("/billing-runs/?wait=0", HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-get="/billing-runs/?wait=0" hx-trigger="every 2s"' in running and f'data-run="{run.pk}" data-status="running"' in running
    run.status = "succeeded"
    run.save()
    assert "hx-trigger" not in admin_client_bo.get("/billing-runs/?wait=0", HTTP_HX_REQUEST="true").content.decode()


def test_dead_letter_replay(world, admin_client_bo, usage_api):
    world.metric("calls")
    world.plan("metered", pay_in_advance=False,
               charges=[{"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "1.00"}}])
    event = {"transaction_id": "late-cust-1", "code": "calls", "customer": "newco", "timestamp": timezone.now().isoformat()}
    response = usage_api.post("/api/v1/events/", event, format="json")
    assert response.status_code in (400, 404, 422), response.content
    letter = DeadLetterEvent.objects.get(transaction_id="late-cust-1")
    assert "late-cust-1" in _text(admin_client_bo.get("/dead-letters/"))
    rejected = _text(admin_client_bo.post(f"/dead-letters/{letter.pk}/replay/", follow=True))
    assert "rejected again" in rejected
    world.customer("newco")
    world.subscription("newco-1", customer="newco", plan="metered", start_date=timezone.localdate() - timedelta(days=3))
    accepted = _text(admin_client_bo.post(f"/dead-letters/{letter.pk}/replay/", follow=True))
    assert f"Replayed dead letter {letter.pk}: accepted." in accepted
    assert "late-cust-1" not in _text(admin_client_bo.get("/dead-letters/"))


# --- dashboard, customers, search ----------------------------------------------------------------

def test_dashboard_figures(books, admin_client_bo):
    """Both invoices were finalized today (issue date = finalize date), so they are issued this month
    and not yet due (net 14 and net 30). A $10.00 payment today lands in this month's cash."""
    admin_client_bo.post(f"/invoices/{books['acme-main']}/pay/", {"amount": "10.00"})
    response = admin_client_bo.get("/?currency=USD")
    aging = response.context["charts"]["aging"]
    assert aging["datasets"][0]["data"] == ["20.00", "0.00", "0.00", "0.00", "0.00"]
    cash = response.context["charts"]["cash"]["datasets"][1]["data"]
    assert cash[-1] == "10.00"
    text = _text(response)
    assert '<tr data-currency="USD"><td>USD</td><td class="r">$30.00</td><td class="r">$10.00</td>' in text
    assert '<a href="/invoices/?due=open&currency=USD">$20.00</a>' in text
    assert "¥1,500" in text
    # MRR: Acme's plan has a $20.00 base fee since Jan 2026; no movement in the last six months.
    mrr = {d["label"]: d["data"] for d in response.context["charts"]["mrr"]["datasets"]}
    assert mrr["MRR at month end"] == ["20.00"] * 6 and mrr["New"] == ["0.00"] * 6
    jpy = admin_client_bo.get("/?currency=JPY").context["charts"]["aging"]["datasets"][0]["data"]
    assert jpy == ["1500", "0", "0", "0", "0"]
    assert response.context["charts"]["cash"]["labels"][-1] == timezone.localdate().strftime("%b %Y")


def test_customer_list_filters_and_360(books, world, admin_client_bo):
    """Usage chart: the last 30 customer-local days; 4 calls two days ago (noon UTC = 07:00/08:00 in
    New York, the same day) and 1 yesterday. A second subscription must not double the amount due."""
    from common.timeutil import local_date

    ny_today = local_date(timezone.now(), "America/New_York")
    two_days_ago, yesterday = ny_today - timedelta(days=2), ny_today - timedelta(days=1)
    world.subscription("acme-extra", customer="acme", plan="metered", start_date=date(2026, 3, 1))
    world.events("calls", [f"{two_days_ago.isoformat()}T12:00:{s:02d}Z" for s in range(4)]
                 + [f"{yesterday.isoformat()}T12:00:00Z"], subscription="acme-main")
    listing = _text(admin_client_bo.get("/customers/?currency=JPY"))
    assert "Globex" in listing and "Acme" not in listing and "¥1,500" in listing
    partial = admin_client_bo.get("/customers/?q=acm", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="customer-table")
    assert b"<html" not in partial.content and b"Acme" in partial.content
    page = admin_client_bo.get("/customers/acme/")
    text = _text(page)
    assert "acme-main" in text and "INV-2026-000001" in text and "$30.00" in text and "America/New_York" in text
    assert "invoice.finalized" in text
    (usage,) = page.context["usage_charts"]
    data = usage["chart"]["datasets"][0]["data"]
    assert usage["metric"] == "calls" and len(data) == 30 and data[-3:] == ["4", "1", "0"] and set(data[:-3]) == {"0"}
    assert usage["chart"]["labels"][-1] == ny_today.isoformat()
    (acme,) = [c for c in admin_client_bo.get("/customers/?currency=USD").context["rows"]]
    assert (acme.open_due, acme.live_subscriptions) == (Decimal("30.00"), 2)
    assert admin_client_bo.get("/customers/nobody/").status_code == 404


def test_global_search(books, admin_client_bo):
    hits = _text(admin_client_bo.get("/search/?q=INV-2026-000002", HTTP_HX_REQUEST="true"))
    assert "INV-2026-000002" in hits and "Globex" in hits and "<html" not in hits
    sub = _text(admin_client_bo.get("/search/?q=acme-main"))
    assert "Subscription" in sub and "/customers/acme/#sub-" in sub


def test_navigation_links_only_built_pages(admin_client_bo):
    text = _text(admin_client_bo.get("/"))
    for key in ("dashboard", "customers", "invoices", "review", "billing_runs", "dead_letters"):
        assert f'data-nav="{key}"' in text
    for key in ("analytics", "revenue", "payments", "dunning", "anomalies"):  # landed
        assert f'data-nav="{key}"' in text


def test_pages_reference_only_local_assets(admin_client_bo):
    text = admin_client_bo.get("/").content.decode()
    assert not re.search(r'(src|href)="(https?:)?//', text)
    for asset in ("/static/vendor/htmx/htmx.min.js", "/static/vendor/chartjs/chart.umd.min.js", "/static/backoffice/app.js"):
        assert asset in text


def test_viewer_group_is_not_admin(finance_viewer):
    assert not finance_viewer.groups.filter(name="finance-admin").exists()
    assert Group.objects.filter(name="finance-viewer").exists()


def test_pages_and_pdfs_share_one_money_formatter():
    import invoicing.pdf
    from backoffice.templatetags.backoffice import money
    from common.money import Formatter, format_money_display

    assert invoicing.pdf.Formatter is Formatter
    assert money(Decimal("1234.5"), "USD") == format_money_display(Decimal("1234.5"), "USD") == "$1,234.50"
    assert money(Decimal("14300"), "JPY") == "¥14,300" and money("0.005", "USD") == "$0.01"


def test_analytics_page_and_csv_downloads(books, viewer_client, billing_api):
    """Acme's $20.00 base fee is the USD MRR since Jan 2026 (ARR $240.00): over the 12 months to
    November 2026 the bridge starts in December 2025 at $0.00 and January's new MRR is $20.00. The CSVs
    are the analytics API's own, served to the session."""
    response = viewer_client.get("/analytics/?currency=USD")
    text = _text(response)
    assert response.status_code == 200 and "$20.00" in text and "$240.00" in text
    mrr = {d["label"]: d["data"] for d in response.context["charts"]["mrr"]["datasets"]}
    from backoffice.selectors import month_start

    months = [month_start(timezone.localdate(), back) for back in range(11, -1, -1)]
    assert response.context["charts"]["mrr"]["labels"] == [m.strftime("%b %Y") for m in months]
    assert mrr["MRR at month end"] == ["20.00" if m >= date(2026, 1, 1) else "0.00" for m in months]
    assert mrr["New"] == ["20.00" if m == date(2026, 1, 1) else "0.00" for m in months]
    aging_csv = viewer_client.get("/analytics/ar_aging.csv?currency=USD")
    assert aging_csv.status_code == 200 and aging_csv["Content-Type"].startswith("text/csv")
    api_csv = billing_api.get("/api/v1/analytics/ar_aging.csv", {"currency": "USD"})
    assert aging_csv.content == api_csv.content and b"acme" in aging_csv.content
    assert viewer_client.get("/analytics/nothing.csv").status_code == 404
    assert Client().get("/analytics/mrr.csv").status_code == 302

