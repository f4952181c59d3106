"""Two syncs / two closes at once, on real separate connections: nothing posts twice."""

from datetime import date

import pytest
from django.db.models import Count

from revrec.close import revrec_close
from revrec.models import AccountingPeriod, JournalEntry, ScheduleEntry
from revrec.postings import revrec_sync
from tests.revrec.conftest import Books
from tests.race import race

pytestmark = pytest.mark.django_db(transaction=True)


def _invoices(count):
    books = Books()
    for n in range(count):
        books.invoice(issue=date(2025, 1, 1), customer=books.customer(f"c{n}"),
                      lines=[("subscription", "100.00", date(2025, 1, 1), date(2025, 4, 1)),
                             ("usage", "7.00", date(2024, 12, 1), date(2025, 1, 1))])


def test_two_concurrent_syncs_post_each_invoice_once():
    _invoices(30)
    assert race(revrec_sync, revrec_sync).errors == []
    assert JournalEntry.objects.filter(source_type="invoice", kind="finalized").count() == 30
    assert not JournalEntry.objects.values("source_type", "source_id", "kind").annotate(n=Count("id")).filter(n__gt=1)
    assert ScheduleEntry.objects.count() == 30 * 4


def test_two_concurrent_closes_recognize_once():
    _invoices(20)
    assert race(*[lambda: revrec_close(month=date(2025, 1, 1))] * 2).errors == []
    assert AccountingPeriod.objects.filter(month=date(2025, 1, 1)).count() == 1
    # per invoice: January recognition (34.44) and December's usage accrual (7.00, a late item: December open)
    assert JournalEntry.objects.filter(source_type="recognition", kind="recognition").count() == 20
    assert JournalEntry.objects.filter(source_type="recognition", kind="accrual").count() == 20
