"""Done-when over the demo data set: every month's trial balance sums to zero, the rollforward
identity holds, reconciliation differences sum exactly, and rerunning a close changes nothing."""

from datetime import date
from decimal import Decimal as D

import pytest

from demo.data import seed_demo
from revrec.close import revrec_close
from revrec.models import AccountingPeriod, JournalLine
from revrec.reports import reconciliation, rollforward, trial_balance
from revrec.schedules import month_end

pytestmark = pytest.mark.django_db


def test_demo_months_close_and_balance():
    summary = seed_demo(today=date(2026, 10, 15))
    months = sorted(AccountingPeriod.objects.values_list("month", flat=True))
    assert summary["revenue months closed"] == len(months) >= 7  # March … September 2026
    assert months[-1] == date(2026, 9, 1)
    currencies = sorted(set(JournalLine.objects.values_list("currency", flat=True)))
    assert len(currencies) >= 2  # the demo bills in several currencies (JPY for Umbrella)
    for currency in currencies:
        for month in months:
            tb = trial_balance(currency=currency, through=month_end(month))
            assert D(tb["total"]) == 0 and tb["total_debit"] == tb["total_credit"]
            rf = rollforward(month=month, currency=currency)
            assert D(rf["closing_deferred"]) == (D(rf["opening_deferred"]) + D(rf["billed"]) - D(rf["recognized"])
                                                 - D(rf["credited"]))
            recon = reconciliation(month=month, currency=currency)
            assert sum(D(k["amount"]) for k in recon["billed_vs_collected"]) == D(recon["billed"]) - D(recon["collected"])
            assert sum(D(k["amount"]) for k in recon["billed_vs_recognized"]) == D(recon["billed"]) - D(recon["recognized"])
    snapshot = list(JournalLine.objects.order_by("pk").values_list("pk", "account", "debit", "credit"))
    for month in months:
        assert revrec_close(month=month)["already_closed"] is True
    assert seed_demo(today=date(2026, 10, 15))["revenue months closed"] == 0
    assert list(JournalLine.objects.order_by("pk").values_list("pk", "account", "debit", "credit")) == snapshot
