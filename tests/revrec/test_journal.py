"""The journal: PostgreSQL refuses an unbalanced entry (deferred constraint trigger) at commit."""

from datetime import date
from decimal import Decimal as D

import pytest
from django.db import IntegrityError, connection, transaction

from revrec.models import JournalEntry, JournalLine


def _entry(**extra):
    return JournalEntry.objects.create(date=date(2025, 1, 31), currency="USD", memo="test", source_type="test",
                                       source_id=extra.pop("source_id", "t1"), kind="k", document_date=date(2025, 1, 31))


def _discard(entry):
    # The test transaction re-checks deferred constraints at teardown: drop the refused entry.
    JournalLine.objects.filter(entry=entry).delete()
    entry.delete()


def _commit_check():
    # Deferred constraints fire at commit; SET CONSTRAINTS ALL IMMEDIATE fires them now (inside the test transaction).
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


@pytest.mark.django_db
def test_a_balanced_entry_commits():
    entry = _entry()
    JournalLine.objects.create(entry=entry, account="cash", debit=D("10.00"), currency="USD")
    JournalLine.objects.create(entry=entry, account="accounts_receivable", credit=D("10.00"), currency="USD")
    _commit_check()
    assert JournalLine.objects.filter(entry=entry).count() == 2


@pytest.mark.django_db
def test_an_unbalanced_entry_is_refused():
    entry = _entry()
    JournalLine.objects.create(entry=entry, account="cash", debit=D("10.00"), currency="USD")
    JournalLine.objects.create(entry=entry, account="accounts_receivable", credit=D("9.99"), currency="USD")
    with pytest.raises(IntegrityError, match="does not balance in USD"):
        with transaction.atomic():
            _commit_check()
    _discard(entry)


@pytest.mark.django_db
def test_balance_is_per_currency():
    entry = _entry()
    JournalLine.objects.create(entry=entry, account="cash", debit=D("10.00"), currency="USD")
    JournalLine.objects.create(entry=entry, account="accounts_receivable", credit=D("10.00"), currency="EUR")
    with pytest.raises(IntegrityError, match="does not balance"):
        with transaction.atomic():
            _commit_check()
    _discard(entry)


@pytest.mark.django_db
def test_an_update_that_unbalances_is_refused():
    entry = _entry()
    JournalLine.objects.create(entry=entry, account="cash", debit=D("10.00"), currency="USD")
    line = JournalLine.objects.create(entry=entry, account="revenue", credit=D("10.00"), currency="USD")
    _commit_check()
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    line.credit = D("11.00")
    line.save()
    with pytest.raises(IntegrityError, match="does not balance"):
        with transaction.atomic():
            _commit_check()
    _discard(entry)


@pytest.mark.django_db
def test_one_side_positive():
    entry = _entry()
    with pytest.raises(IntegrityError, match="revrec_line_one_side"):
        with transaction.atomic():
            JournalLine.objects.create(entry=entry, account="cash", debit=D("1"), credit=D("1"), currency="USD")


@pytest.mark.django_db(transaction=True)
def test_the_trigger_fires_at_a_real_commit():
    with pytest.raises(IntegrityError, match="does not balance"):
        with transaction.atomic():
            entry = _entry(source_id="real")
            JournalLine.objects.create(entry=entry, account="cash", debit=D("5.00"), currency="USD")
            # the check is deferred: the transaction can still write the other side before commit
            assert JournalLine.objects.filter(entry=entry).count() == 1
    assert not JournalEntry.objects.filter(source_id="real").exists()
    with transaction.atomic():
        entry = _entry(source_id="real2")
        JournalLine.objects.create(entry=entry, account="cash", debit=D("5.00"), currency="USD")
        JournalLine.objects.create(entry=entry, account="revenue", credit=D("5.00"), currency="USD")
    assert JournalEntry.objects.filter(source_id="real2").exists()
