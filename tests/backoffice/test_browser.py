"""The back office in a real browser: Debian's headless Chromium driven by selenium (system
chromedriver) against pytest-django's live server on 127.0.0.1.

Every page load is recorded through Chrome's performance log; `_assert_local_only` fails a test if
any request left 127.0.0.1 (a CDN script, a web font, an analytics beacon)."""

from __future__ import annotations

import json
import os
import shutil
from datetime import date, timedelta
from decimal import Decimal
from urllib.parse import urlparse

import pytest
from django.utils import timezone

from backoffice.selectors import month_start
from tests.backoffice.conftest import PASSWORD

CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):  # pragma: no cover - the Makefile installs them
    raise RuntimeError(f"Browser tests need {CHROMIUM} and {CHROMEDRIVER}: apt-get install chromium chromium-driver "
                       "(`make test` does it when they are missing)")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole session (each test starts from a clean cookie jar)."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1366,900",
                 "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
                 "--disable-sync", "--no-first-run", "--disable-extensions", "--metrics-recording-only",
                 "--disable-features=Translate,OptimizationHints,MediaRouter"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def browse(browser, live_server):
    """The module's browser with a clean session; after the test, every request it made must have
    gone to the live server."""
    browser.get(live_server.url + "/login/")
    browser.delete_all_cookies()
    browser.get_log("performance")
    browser.get_log("browser")
    yield browser
    _assert_local_only(browser)


def _assert_local_only(driver) -> None:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    assert urls, "the performance log recorded no request"
    # Network schemes must name 127.0.0.1; data:, blob: and the browser's own chrome-extension:// PDF
    # viewer never leave the process.
    outside = [u for u in urls if urlparse(u).scheme in ("http", "https", "ws", "wss", "ftp")
               and urlparse(u).hostname != "127.0.0.1"]
    assert not outside, f"requests left the machine: {outside[:5]}"


def _wait(driver, seconds: float = 10):
    return WebDriverWait(driver, seconds)


def _sign_in(driver, live_server, username: str, next_path: str = "/") -> None:
    driver.get(f"{live_server.url}/login/?next={next_path}")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, "header.topbar")))


def _expect_message(driver, text: str) -> None:
    """Wait for the page after a POST to show `text` among its messages (the old page may still be up)."""
    _wait(driver).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".messages"), text))


def _chart_data(driver, canvas_id: str) -> list[list[float]]:
    _wait(driver).until(lambda d: d.execute_script(
        "return !!(window.Chart && Chart.getChart(document.getElementById(arguments[0])))", canvas_id))
    return driver.execute_script(
        "return Chart.getChart(document.getElementById(arguments[0])).data.datasets.map(d => d.data)", canvas_id)


def test_sign_in_and_dashboard_charts_equal_the_api(books, billing_api, finance_admin, browse, live_server):
    # A payment today, so this month's cash bar is not empty: $12.50 on Acme's $30.00.
    billing_api.post(f"/api/v1/invoices/{books['acme-main']}/mark_paid/", {"amount": "12.50"}, format="json")
    _sign_in(browse, live_server, "fin-admin")
    assert browse.current_url == live_server.url + "/"
    assert "Dashboard" in browse.find_element(By.TAG_NAME, "h1").text
    browse.find_element(By.CSS_SELECTOR, "select[name=currency] option[value=USD]").click()  # reloads the page
    _wait(browse).until(EC.url_contains("currency=USD"))

    today = timezone.localdate()
    invoices = billing_api.get("/api/v1/invoices/", {"status": "finalized"}).json()["results"]
    api_aging = billing_api.get("/api/v1/analytics/ar_aging/", {"currency": "USD"}).json()
    expected_aging = [Decimal(api_aging["buckets"][k]) for k in ("current", "1_30", "31_60", "61_90", "over_90")]
    assert expected_aging == [Decimal("17.50"), 0, 0, 0, 0]  # hand check: $30.00 − $12.50, finalized today, net 14
    (aging,) = _chart_data(browse, "chart-aging")
    assert [Decimal(str(v)) for v in aging] == expected_aging

    api_mrr = billing_api.get("/api/v1/analytics/mrr/", {"currency": "USD", "from": f"{month_start(today, 5):%Y-%m}",
                                                         "to": f"{today:%Y-%m}"}).json()["results"]
    *movements, mrr_line = _chart_data(browse, "chart-mrr")
    assert [Decimal(str(v)) for v in mrr_line] == [Decimal(r["mrr"]) for r in api_mrr] == [Decimal("20.00")] * 6
    assert [Decimal(str(v)) for v in movements[0]] == [Decimal(r["new"]) for r in api_mrr]

    invoiced, cash = _chart_data(browse, "chart-cash")
    api_acme = billing_api.get(f"/api/v1/invoices/{books['acme-main']}/").json()
    assert cash[-1] == float(Decimal(api_acme["amount_paid"])) == 12.5
    issued_this_month = sum((Decimal(i["total"]) for i in invoices if i["currency"] == "USD"
                             and i["issue_date"][:7] == today.isoformat()[:7]), Decimal(0))
    assert Decimal(str(invoiced[-1])) == issued_this_month == Decimal("30.00")  # finalized today
    # The same figures as text, formatted per currency.
    row = browse.find_element(By.CSS_SELECTOR, "#month-figures tr[data-currency='USD']").text
    assert "$12.50" in row and "$17.50" in row
    assert "¥1,500" in browse.find_element(By.CSS_SELECTOR, "#month-figures tr[data-currency='JPY']").text


def test_record_a_payment_and_issue_a_credit_note(books, billing_api, finance_admin, browse, live_server):
    invoice_id = books["acme-main"]
    _sign_in(browse, live_server, "fin-admin", f"/invoices/{invoice_id}/")
    form = browse.find_element(By.CSS_SELECTOR, "#record-payment form")
    form.find_element(By.NAME, "amount").send_keys("10.00")
    form.find_element(By.NAME, "reference").send_keys("wire 42")
    form.find_element(By.CSS_SELECTOR, "button").click()
    _expect_message(browse, "Recorded a bank transfer payment of $10.00 on INV-2026-000001; $20.00 remains due (finalized).")
    assert browse.find_element(By.CSS_SELECTOR, "[data-field=amount_due]").text == "$20.00"
    assert "wire 42" in browse.find_element(By.ID, "payments").text
    assert billing_api.get(f"/api/v1/invoices/{invoice_id}/").json()["amount_due"] == "20.00"

    browse.find_element(By.CSS_SELECTOR, "#issue-credit summary").click()
    credit = browse.find_element(By.CSS_SELECTOR, "#issue-credit form")
    credit.find_element(By.NAME, "amount").send_keys("5.00")
    credit.find_element(By.NAME, "reason").send_keys("Service outage")
    button = credit.find_element(By.CSS_SELECTOR, "button")
    browse.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)  # the actions column is taller now
    button.click()
    _expect_message(browse, "for $5.00 (reduces the invoice's amount due).")
    assert browse.find_element(By.CSS_SELECTOR, "[data-field=amount_due]").text == "$15.00"
    assert "Service outage" in browse.find_element(By.ID, "credit-notes").text
    notes = billing_api.get(f"/api/v1/invoices/{invoice_id}/credit_notes/").json()
    notes = notes["results"] if isinstance(notes, dict) else notes
    assert [(n["total"], n["reason"]) for n in notes] == [("5.00", "Service outage")]
    # The PDF is embedded through the authenticated view.
    assert browse.find_element(By.CSS_SELECTOR, "iframe.pdf").get_attribute("src").endswith(f"/invoices/{invoice_id}/pdf/")


def test_start_a_billing_run_and_watch_it_finish(world, finance_admin, browse, live_server):
    world.metric("calls")
    world.plan("metered", pay_in_advance=False,
               charges=[{"billable_metric": "calls", "model": "standard", "properties": {"unit_amount": "1.00"}}])
    world.customer("c1")
    world.subscription("s1", customer="c1", plan="metered", start_date=date(2026, 1, 1))
    _sign_in(browse, live_server, "fin-admin", "/billing-runs/")
    field = browse.find_element(By.CSS_SELECTOR, "#start-run input[name=as_of]")
    browse.execute_script("arguments[0].value = '2026-03-01'", field)
    browse.find_element(By.CSS_SELECTOR, "#start-run button").click()
    _expect_message(browse, "up to 2026-03-01 started.")
    row = _wait(browse, 30).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#runs tr[data-status=succeeded]")))
    assert "Mar 1, 2026" in row.text and "fin-admin" in row.text
    row.find_element(By.CSS_SELECTOR, "a").click()
    assert "Billing run #" in browse.find_element(By.TAG_NAME, "h1").text
    assert browse.find_element(By.CSS_SELECTOR, "dl").text.count("2 / 2") == 1  # two invoices, two lines (Jan, Feb)


def test_viewer_sees_pages_but_no_action_and_is_refused(books, finance_viewer, browse, live_server):
    _sign_in(browse, live_server, "fin-viewer")
    nav = [a.text for a in browse.find_elements(By.CSS_SELECTOR, ".mainnav a")]
    assert nav == ["Dashboard", "Customers", "Invoices", "Review queue", "Billing runs", "Payments", "Dunning",
                   "Revenue", "Analytics", "Anomalies", "Simulation", "Dead letters"]
    invoice_id = books["acme-main"]
    browse.get(f"{live_server.url}/invoices/{invoice_id}/")
    assert "read-only access" in browse.find_element(By.ID, "actions").text
    assert not browse.find_elements(By.CSS_SELECTOR, "#actions form")
    browse.get(f"{live_server.url}/billing-runs/")
    assert not browse.find_elements(By.ID, "start-run")
    status = browse.execute_script("""
        const token = document.querySelector('body').getAttribute('hx-headers');
        const csrf = JSON.parse(token)['X-CSRFToken'];
        const body = new URLSearchParams({amount: '1.00', csrfmiddlewaretoken: csrf});
        const r = await fetch(arguments[0], {method: 'POST', body: body, redirect: 'manual'});
        return r.status;""", f"/invoices/{invoice_id}/pay/")
    assert status == 403
    # Global search works for viewers too (htmx partial).
    box = browse.find_element(By.CSS_SELECTOR, ".globalsearch input")
    box.send_keys("INV-2026-000002")
    hit = _wait(browse).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#search-results a")))
    assert "INV-2026-000002" in hit.text
    hit.click()
    assert "¥1,500" in _wait(browse).until(EC.presence_of_element_located((By.CSS_SELECTOR, "[data-field=amount_due]"))).text


def test_every_page_stays_on_the_machine(books, finance_admin, browse, live_server):
    """Each main page loads with its scripts and charts; the fixture then checks no request left 127.0.0.1."""
    _sign_in(browse, live_server, "fin-admin")
    for path in ("/", "/customers/", "/customers/acme/", "/invoices/", f"/invoices/{books['globex-main']}/",
                 "/review/", "/billing-runs/", "/analytics/", "/dead-letters/", "/payments/", "/dunning/", "/anomalies/",
                 "/revenue/", "/simulation/?run=1&plan=metered&current_plan=metered&from=2026-01-01&to=2026-02-01"):
        browse.get(live_server.url + path)
        assert browse.execute_script("return typeof htmx !== 'undefined' && typeof Chart !== 'undefined'"), path
        errors = [e for e in browse.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, (path, errors)


def test_edit_and_approve_a_flagged_draft(world, finance_admin, browse, live_server):
    """Initech: $2.00 in January, 20 calls × $1.00 = $20.00 in February → held for review; a $0.60
    price override for February gives 20 × $0.60 = $12.00, then approve."""
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
    _sign_in(browse, live_server, "fin-admin", "/review/")
    browse.find_element(By.PARTIAL_LINK_TEXT, "Edit: credit or price override").click()
    _wait(browse).until(EC.presence_of_element_located((By.ID, "draft-reprice")))
    browse.find_element(By.CSS_SELECTOR, "#draft-reprice summary").click()
    form = browse.find_element(By.CSS_SELECTOR, "#draft-reprice form")
    form.find_element(By.NAME, "unit_amount").send_keys("0.60")
    button = form.find_element(By.CSS_SELECTOR, "button")
    browse.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()
    _expect_message(browse, "the draft's total is now $20.00 → $12.00.")
    assert browse.find_element(By.CSS_SELECTOR, "[data-field=amount_due]").text == "$12.00"
    browse.find_element(By.CSS_SELECTOR, "#actions button[value=approve]").click()
    _expect_message(browse, "Approved and finalized as INV-2026-")
    assert browse.find_element(By.CSS_SELECTOR, "[data-field=amount_due]").text == "$12.00"
