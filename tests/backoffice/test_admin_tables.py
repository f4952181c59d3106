"""Configuration admin as tables: a charge's tiers / package / percentage properties, plan version
prices per currency, tax rates as percentages, a dunning policy's schedule day by day; the editors
still validate (a typed day list, the charges' JSON with a table preview)."""

from __future__ import annotations

import html
import re

import pytest
from django.test import Client
from django.urls import reverse

from catalog.models import TaxRate
from catalog.selectors import plan_current_version
from catalog.services import plan_create
from dunning.services import policy_default
from tests.catalog.factories import BillableMetricFactory

pytestmark = pytest.mark.django_db

TIERS = {"tiers": [{"up_to": 1000, "unit_amount": "0.004", "flat_amount": "0"},
                   {"up_to": None, "unit_amount": "0.002", "flat_amount": "5.00"}]}


@pytest.fixture
def superuser_client(django_user_model) -> Client:
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.test", "pw"))
    return client


def _page(client, url) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return html.unescape(re.sub(r"\s+", " ", response.content.decode()))


def _cells(page: str, css: str) -> list[list[str]]:
    table = re.search(rf'<table class="config-table {css}".*?<tbody>(.*?)</tbody>', page).group(1)
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table)]


@pytest.fixture
def plans():
    for code in ("calls", "storage"):
        BillableMetricFactory(code=code)
    BillableMetricFactory(code="payments", aggregation="sum", field="amount")
    usd = plan_create(code="team", name="Team", currency="USD", interval="month", amount="49", minimum_commitment="100",
                      charges=[{"billable_metric": "calls", "model": "graduated", "properties": TIERS},
                               {"billable_metric": "storage", "model": "package",
                                "properties": {"package_size": 100, "amount": "5.00", "free_units": 10}},
                               {"billable_metric": "payments", "model": "percentage",
                                "properties": {"rate": "2.9", "fixed_amount": "0.30"}}])
    jpy = plan_create(code="team_jpy", name="Team JPY", currency="JPY", interval="month", amount="14300",
                      charges=[{"billable_metric": "calls", "model": "volume", "properties": {"tiers": [
                          {"up_to": 100, "unit_amount": "500"}, {"up_to": None, "unit_amount": "400"}]}}])
    return plan_current_version(usd), plan_current_version(jpy)


def test_plan_version_page_shows_tier_tables_and_money(superuser_client, plans):
    usd, jpy = plans
    page = _page(superuser_client, reverse("admin:catalog_planversion_change", args=[usd.pk]))
    assert _cells(page, "tiers") == [["0", "1,000", "$0.004", "$0.00"], ["1,000", "∞", "$0.002", "$5.00"]]
    assert "each tier prices its own units" in page
    assert _cells(page, "package") == [["Package size (units)", "100"], ["Price per started package", "$5.00"],
                                       ["Free units", "10"]]
    assert _cells(page, "percentage")[:2] == [["Rate", "2.9%"], ["Fixed fee per event", "$0.30"]]
    assert "$49.00" in page and "$100.00" in page  # the version's fee and minimum, not 49.000000000000
    assert '"tiers"' not in page and "0.004000" not in page  # no raw JSON
    page = _page(superuser_client, reverse("admin:catalog_planversion_change", args=[jpy.pk]))
    assert _cells(page, "tiers") == [["0", "100", "¥500", "¥0"], ["100", "∞", "¥400", "¥0"]]
    assert "¥14,300" in page and "the tier the total reaches prices every unit" in page
    plan_page = _page(superuser_client, reverse("admin:catalog_plan_change", args=[jpy.plan_id]))
    assert "¥14,300" in plan_page
    listing = _page(superuser_client, reverse("admin:catalog_planversion_changelist"))
    assert "$49.00" in listing and "¥14,300" in listing
    charge = usd.charges.get(model="graduated")
    page = _page(superuser_client, reverse("admin:catalog_charge_change", args=[charge.pk]))
    assert _cells(page, "tiers")[1] == ["1,000", "∞", "$0.002", "$5.00"]


def test_new_version_editor_previews_the_copied_tiers_and_still_validates(superuser_client, plans):
    usd, _ = plans
    page = _page(superuser_client, reverse("admin:catalog_planversion_add") + f"?copy_from={usd.pk}")
    assert "Reads as:" in page and _cells(page, "tiers")[0] == ["0", "1,000", "0.004", "0"]
    # A bad tier is refused naming the property (the API's validation).
    data = {"plan": usd.plan_id, "customer": "", "amount": "49", "pay_in_advance": "on", "trial_days": "0",
            "minimum_commitment": "", "charges-TOTAL_FORMS": "1", "charges-INITIAL_FORMS": "0",
            "charges-MIN_NUM_FORMS": "0", "charges-MAX_NUM_FORMS": "1000",
            "charges-0-billable_metric": usd.charges.get(model="graduated").billable_metric_id,
            "charges-0-model": "graduated", "charges-0-properties": '{"tiers": [{"up_to": 10, "unit_amount": "x"}]}',
            "charges-0-invoice_display_name": ""}
    response = superuser_client.post(reverse("admin:catalog_planversion_add"), data)
    assert response.status_code == 200 and "unit_amount" in response.content.decode()


def test_tax_rates_read_as_percentages(superuser_client):
    from catalog.services import tax_rate_create

    rate = tax_rate_create(name="NY sales tax", country="US", region="NY", rate="8.875")
    assert "8.875%" in _page(superuser_client, reverse("admin:catalog_taxrate_changelist"))
    page = _page(superuser_client, reverse("admin:catalog_taxrate_change", args=[rate.pk]))
    assert "8.875%" in page and "8.8750" not in page
    # Name and end date stay editable; the rate does not.
    assert 'name="name"' in page and 'name="rate"' not in page
    assert TaxRate.objects.get().rate == 8.875


def test_dunning_policy_schedule_table_and_day_list_editor(superuser_client):
    policy = policy_default()
    policy.retry_days, policy.email_days, policy.max_retries = [1, 3, 6], [0, 3], 4
    policy.escalate_day, policy.final_day = 14, 21
    policy.save()
    url = reverse("admin:dunning_dunningpolicy_change", args=[policy.pk])
    page = _page(superuser_client, url)
    assert _cells(page, "dunning-schedule") == [
        ["0", "e-mail: payment failed"], ["1", "retry #1"], ["3", "retry #2; reminder e-mail"], ["6", "retry #3"],
        ["14", "escalate (action required)"], ["21", f"final: {policy.get_final_action_display()}"]]
    assert 'value="1, 3, 6"' in page  # the editor shows days, not a JSON list
    assert "1, 3, 6" in _page(superuser_client, reverse("admin:dunning_dunningpolicy_changelist"))
    data = {"name": policy.name, "is_default": "on", "currency": "", "segment": "", "active": "on",
            "retry_days": "2, 5, 9", "max_retries": 4, "retry_window_days": 14, "email_days": "0 3",
            "escalate_day": 14, "final_day": 21, "final_action": "keep_subscription", "network_cap_attempts": 15,
            "network_cap_days": 30, "smart_timing": "on", "default_retry_hour": 10, "payday_alignment": "on"}
    bad = superuser_client.post(url, {**data, "retry_days": "5, 2"})
    assert bad.status_code == 200 and "Days must be ascending" in bad.content.decode()
    bad = superuser_client.post(url, {**data, "retry_days": "2, soon"})
    assert bad.status_code == 200 and "is not a whole number of days" in html.unescape(bad.content.decode())
    assert superuser_client.post(url, data).status_code == 302
    policy.refresh_from_db()
    assert (policy.retry_days, policy.email_days) == ([2, 5, 9], [0, 3])


def test_credit_grants_and_balance_ledger_show_money_per_currency(superuser_client, books, admin_client_bo):
    from customers.models import CreditGrant, Customer, CustomerBalanceTransaction
    from customers.services import balance_adjust, prepaid_credit_grant

    globex = Customer.objects.get(external_id="globex")
    grant = prepaid_credit_grant(customer=globex, currency="JPY", amount="14300", reason="launch goodwill")
    balance_adjust(customer=globex, currency="JPY", amount="500", description="rounding")
    for url in (reverse("admin:customers_creditgrant_changelist"),
                reverse("admin:customers_creditgrant_change", args=[grant.pk]),
                reverse("admin:customers_customerbalancetransaction_changelist"),
                reverse("admin:customers_customerbalancetransaction_change",
                        args=[CustomerBalanceTransaction.objects.get().pk])):
        page = _page(superuser_client, url)
        assert "¥14,300" in page or "¥500" in page, url
        assert not re.search(r"\b\d+\.\d{4}\b", page), url
    add = _page(superuser_client, reverse("admin:customers_creditgrant_add"))
    assert 'name="amount"' in add  # the add form still takes a plain amount
    assert CreditGrant.objects.get().remaining == 14300


def test_coupons_read_as_money_and_percent(superuser_client):
    from catalog.services import coupon_create

    fixed = coupon_create(code="JPY500", name="500 off", kind="fixed", amount_off="500", currency="JPY", duration="once")
    pct = coupon_create(code="Q25", name="quarter", kind="percent", percent_off="12.5", duration="once")
    listing = _page(superuser_client, reverse("admin:catalog_coupon_changelist"))
    assert "¥500" in listing and "12.5%" in listing
    page = _page(superuser_client, reverse("admin:catalog_coupon_change", args=[fixed.pk]))
    assert "¥500" in page and "500.0000" not in page and 'name="amount_off"' not in page and 'name="name"' in page
    page = _page(superuser_client, reverse("admin:catalog_coupon_change", args=[pct.pk]))
    assert "12.5%" in page and "12.5000" not in page
