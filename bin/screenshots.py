#!/usr/bin/env python
"""Seed the demo data into a throwaway database and capture the main back-office pages with headless
Chromium into docs/screenshots/ (1366 px wide, the laptop width the tables are made for).

    .venv/bin/python bin/screenshots.py            # database ledgerline_screenshots, recreated each time

Everything runs on this machine: the app is served in-process on 127.0.0.1 (a port the OS picks)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
DB_NAME = os.environ.get("SCREENSHOTS_DB", "ledgerline_screenshots")
os.environ.setdefault("DATABASE_URL", f"postgres://127.0.0.1:5432/{DB_NAME}")
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "true"  # PDFs and e-mails inline; no worker needed
os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
os.environ["DJANGO_DEBUG"] = "false"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_site.settings.base")
sys.path.insert(0, str(ROOT))

OPEN_DETAILS = "document.querySelectorAll('details.baseline, #draft-reprice').forEach(d => d.open = true)"
PAGES = [  # (file, path, what to wait for[, script to run before the capture])
    ("dashboard.png", "/", "#chart-aging"),
    ("customers.png", "/customers/", "#customer-table"),
    ("customer-360.png", "/customers/{customer}/", "h1"),
    ("invoices.png", "/invoices/", "#invoice-table"),
    ("invoice.png", "/invoices/{invoice}/", "#actions"),
    ("review-queue.png", "/review/", "h1"),
    ("billing-runs.png", "/billing-runs/", "#runs"),
    ("analytics.png", "/analytics/", "#chart-mrr"),
    ("dead-letters.png", "/dead-letters/?state=all", "h1"),
    ("payments.png", "/payments/", "#payment-table"),
    ("revenue.png", "/revenue/", "#chart-waterfall"),
    ("journal.png", "/revenue/journal/", "#journal"),
    ("dunning.png", "/dunning/", "h1"),
    ("anomalies.png", "/anomalies/?status=", "h1"),
    ("review-edit.png", "/invoices/{draft}/", "#actions", OPEN_DETAILS),
    ("simulation.png", "/simulation/?{simulation}", "#simulation-form"),
    ("admin-plan-version.png", "/admin/catalog/planversion/{plan_version}/change/", "#content"),
    ("admin-dunning-policy.png", "/admin/dunning/dunningpolicy/{policy}/change/", "#content"),
]


def _fresh_database() -> None:
    import psycopg

    with psycopg.connect(dbname="postgres", host="127.0.0.1", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def _seed() -> dict:
    """The demo data set, then a little finance work on top so the pages show it: a partial payment,
    a credit note, a rejected event."""
    from datetime import timedelta
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone

    from demo.data import DEMO_ADMIN_USERNAME, seed_demo
    from invoicing.credit_notes import credit_note_create
    from invoicing.models import Invoice, InvoiceStatus
    from payments.services import payment_record_manual
    from usage.services.ingest import event_ingest

    call_command("migrate", verbosity=0)
    print(seed_demo())
    admin = get_user_model().objects.get(username=DEMO_ADMIN_USERNAME)
    open_ = list(Invoice.objects.filter(status=InvoiceStatus.FINALIZED, amount_due__gt=0).order_by("issue_date", "number"))
    if open_:
        first = open_[0]
        payment_record_manual(invoice=first, amount=(first.amount_due / 2).quantize(Decimal("1.00")),
                              reference="Wire 2026-0142", actor=admin)
    if len(open_) > 1:
        credit_note_create(invoice=open_[1], amount=Decimal("10.00"), reason="Goodwill: API outage on the 14th",
                           actor=admin)
    event_ingest(payload={"transaction_id": "tx-unknown-42", "code": "api_calls", "customer": "cus_unknown",
                          "timestamp": (timezone.now() - timedelta(hours=2)).isoformat()})
    focus = (Invoice.objects.filter(status=InvoiceStatus.FINALIZED).exclude(lines__tiers=[]).order_by("-total").first()
             or Invoice.objects.exclude(status=InvoiceStatus.DRAFT).order_by("-total").first())
    return {"invoice": focus.pk, "customer": focus.customer.external_id, **_more_ids()}


def _more_ids() -> dict:
    """The pages added with edit-and-approve, simulation, anomalies, dunning and the admin tables: a
    draft (flagged for review when the demo has one), the most used plan simulated at 10% more over
    the last three months, a tiered plan version, the default dunning policy, last month to close."""
    from datetime import timedelta
    from decimal import Decimal
    import json
    from urllib.parse import urlencode

    from django.db.models import Count
    from django.utils import timezone

    from catalog.models import Charge, Plan
    from dunning.services import policy_default
    from invoicing.models import Invoice, InvoiceStatus

    today = timezone.localdate()
    this_month = today.replace(day=1)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    start = ((last_month - timedelta(days=1)).replace(day=1) - timedelta(days=1)).replace(day=1)
    draft = (Invoice.objects.filter(status=InvoiceStatus.DRAFT).order_by("-needs_review", "-total").first()
             or Invoice.objects.order_by("-total").first())
    plan = Plan.objects.annotate(n=Count("versions__subscriptions")).order_by("-n", "code").first()
    version = plan.current_version
    charges = [{"billable_metric": c.billable_metric.code, "model": c.model, "properties": (
        {**c.properties, "unit_amount": f"{(Decimal(c.properties['unit_amount']) * Decimal('0.8')).normalize():f}"}
        if c.model == "standard" else c.properties)} for c in version.charges.order_by("position", "pk")]
    simulation = {"run": "1", "plan": plan.code, "current_plan": plan.code, "from": start.isoformat(),
                  "to": this_month.isoformat(), "charges": json.dumps(charges)}
    tiered = Charge.objects.filter(model__in=["graduated", "volume"]).order_by("pk").first()
    return {"draft": draft.pk, "simulation": urlencode(simulation),
            "plan_version": (tiered.plan_version_id if tiered else version.pk), "policy": policy_default().pk}


def _stripe_sandbox() -> subprocess.Popen | None:
    """The local Stripe sandbox (DESIGN.md §7) so the demo's card customers pay and decline (dunning
    cases for the dunning page); SCREENSHOTS_STRIPE_PORT picks its port (default 8331), 0 skips it."""
    port = int(os.environ.get("SCREENSHOTS_STRIPE_PORT", "8331"))
    if not port:
        return None
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "stripe_sandbox", "--port", str(port)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    if "listening" not in line:
        proc.kill()
        print(f"no Stripe sandbox ({line.strip()}): card payments and dunning stay empty")
        return None
    os.environ["STRIPE_API_BASE"] = f"http://127.0.0.1:{port}"
    return proc


def main() -> None:
    _fresh_database()
    sandbox = _stripe_sandbox()
    import django

    django.setup()
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.test.testcases import LiveServerThread
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from demo.data import DEMO_ADMIN_PASSWORD, DEMO_ADMIN_USERNAME

    ids = _seed()
    server = LiveServerThread("127.0.0.1", StaticFilesHandler, port=0)
    server.daemon = True
    server.start()
    server.is_ready.wait()
    if server.error:
        raise server.error
    base = f"http://127.0.0.1:{server.port}"
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1366,900",
                 "--hide-scrollbars", "--disable-background-networking", "--disable-component-update", "--no-first-run"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        driver.get(base + "/login/")
        driver.find_element(By.NAME, "username").send_keys(DEMO_ADMIN_USERNAME)
        driver.find_element(By.NAME, "password").send_keys(DEMO_ADMIN_PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(driver, 10).until(EC.presence_of_element_located((By.CSS_SELECTOR, "header.topbar")))
        for name, path, ready, *script in PAGES:
            driver.get(base + path.format(**ids))
            WebDriverWait(driver, 15).until(EC.presence_of_element_located((By.CSS_SELECTOR, ready)))
            for js in script:
                driver.execute_script(js)
            height = min(int(driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]["height"]), 2400)
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                   {"width": 1366, "height": max(height, 640), "deviceScaleFactor": 1, "mobile": False})
            driver.execute_script("return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            driver.save_screenshot(str(OUT / name))
            driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
            print("captured", OUT / name)
        driver.get(base + "/login/")
    finally:
        driver.quit()
        server.terminate()
        if sandbox is not None:
            sandbox.terminate()
    subprocess.run(["ls", "-la", str(OUT)], check=False)


if __name__ == "__main__":
    main()
