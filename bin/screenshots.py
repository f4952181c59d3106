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
DB_NAME = "ledgerline_screenshots"
os.environ.setdefault("DATABASE_URL", f"postgres://127.0.0.1:5432/{DB_NAME}")
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "true"  # PDFs and e-mails inline; no worker needed
os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
os.environ["DJANGO_DEBUG"] = "false"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_site.settings.base")
sys.path.insert(0, str(ROOT))

PAGES = [  # (file, path, what to wait for)
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
    return {"invoice": focus.pk, "customer": focus.customer.external_id}


def main() -> None:
    _fresh_database()
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
        for name, path, ready in PAGES:
            driver.get(base + path.format(**ids))
            WebDriverWait(driver, 15).until(EC.presence_of_element_located((By.CSS_SELECTOR, ready)))
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
    subprocess.run(["ls", "-la", str(OUT)], check=False)


if __name__ == "__main__":
    main()
