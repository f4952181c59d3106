"""Credits: the pure engine (balance first, then prepaid, never below zero) and the ledger /
prepaid services (row locks, earliest expiry first, idempotent per invoice, one currency)."""

import datetime
from decimal import Decimal as D

import pytest

from common.errors import ApplicationError, ConflictError
from common.models import AuditEvent
from invoicing.totals import CreditError, apply_credits
from customers.models import CreditGrant, CreditGrantUsage, CustomerBalanceTransaction
from customers.selectors import customer_credit_balance, prepaid_credit_available
from customers.services import (balance_adjust, credit_balance_apply, credit_balance_credit_from_credit_note,
                                credit_balance_credit_from_invoice, prepaid_credit_consume, prepaid_credit_grant)
from tests.customers.factories import CustomerFactory
from tests.race import race

UTC = datetime.timezone.utc


# --- pure engine ---------------------------------------------------------------------------------

def test_balance_first_then_prepaid():
    result = apply_credits(total_after_tax=D("146.13"), credit_balance=D("20.00"), prepaid_available=D("30.00"),
                           currency="USD")
    assert (result.credit_balance_applied, result.prepaid_applied, result.amount_due) == (
        D("20.00"), D("30.00"), D("96.13"))


def test_credits_larger_than_total_are_capped():
    result = apply_credits(total_after_tax=D("50.00"), credit_balance=D("40.00"), prepaid_available=D("100.00"),
                           currency="USD")
    assert (result.credit_balance_applied, result.prepaid_applied, result.amount_due) == (
        D("40.00"), D("10.00"), D("0.00"))
    result = apply_credits(total_after_tax=D("50.00"), credit_balance=D("80.00"), prepaid_available=D("100.00"),
                           currency="USD")
    assert (result.credit_balance_applied, result.prepaid_applied, result.amount_due) == (
        D("50.00"), D("0.00"), D("0.00"))


def test_zero_or_negative_total_uses_no_credit():
    for total in (D("0"), D("-33.00")):
        result = apply_credits(total_after_tax=total, credit_balance=D("20.00"), prepaid_available=D("5.00"),
                               currency="USD")
        assert (result.credit_balance_applied, result.prepaid_applied, result.amount_due) == (
            D("0.00"), D("0.00"), D("0.00"))


def test_negative_balance_counts_as_zero():
    result = apply_credits(total_after_tax=D("10.00"), credit_balance=D("-5.00"), prepaid_available=D("0"),
                           currency="USD")
    assert (result.credit_balance_applied, result.amount_due) == (D("0.00"), D("10.00"))


def test_jpy_credits():
    result = apply_credits(total_after_tax=D("3273"), credit_balance=D("500"), prepaid_available=D("1000"),
                           currency="JPY")
    assert (result.credit_balance_applied, result.prepaid_applied, result.amount_due) == (D("500"), D("1000"), D("1773"))


def test_engine_rejects_floats():
    with pytest.raises(CreditError):
        apply_credits(total_after_tax=10.0, credit_balance=D("0"), prepaid_available=D("0"), currency="USD")


# --- prepaid credits -----------------------------------------------------------------------------

db = pytest.mark.django_db

NOW = datetime.datetime(2026, 3, 1, 12, tzinfo=UTC)


@db
def test_grant_and_available_respects_expiry_and_currency():
    customer = CustomerFactory()
    prepaid_credit_grant(customer=customer, currency="USD", amount="30.00", reason="Launch promo", actor="finance")
    prepaid_credit_grant(customer=customer, currency="usd", amount="10.00", reason="Expiring",
                         expires_at=datetime.datetime(2026, 3, 31, tzinfo=UTC))
    prepaid_credit_grant(customer=customer, currency="EUR", amount="99.00", reason="Other currency")
    assert prepaid_credit_available(customer=customer, currency="USD", on=NOW) == D("40.00")
    assert prepaid_credit_available(customer=customer, currency="USD", on=datetime.date(2026, 3, 31)) == D("30.00")
    assert prepaid_credit_available(customer=customer, currency="EUR", on=NOW) == D("99.00")
    assert prepaid_credit_available(customer=customer, currency="GBP", on=NOW) == D("0.00")
    assert AuditEvent.objects.filter(action="prepaid_credit.granted").count() == 3
    assert CreditGrant.history.count() == 3


@db
@pytest.mark.parametrize("kwargs,field", [
    ({"amount": "0"}, "amount"),
    ({"amount": "-5"}, "amount"),
    ({"amount": "1.001"}, "amount"),
    ({"amount": 1.5}, "amount"),
    ({"currency": "JPY", "amount": "1.5"}, "amount"),
    ({"currency": "ZZZ"}, "currency"),
    ({"reason": " "}, "reason"),
])
def test_grant_rejects_bad_input(kwargs, field):
    with pytest.raises(ApplicationError) as exc:
        prepaid_credit_grant(customer=CustomerFactory(), **({"currency": "USD", "amount": "10", "reason": "r"} | kwargs))
    assert exc.value.status_code == 400 and field in exc.value.fields


@db
def test_consume_earliest_expiry_first_and_skip_expired():
    customer = CustomerFactory()
    never = prepaid_credit_grant(customer=customer, currency="USD", amount="50.00", reason="no expiry")
    late = prepaid_credit_grant(customer=customer, currency="USD", amount="20.00", reason="late",
                                expires_at=datetime.datetime(2026, 12, 31, tzinfo=UTC))
    soon = prepaid_credit_grant(customer=customer, currency="USD", amount="15.00", reason="soon",
                                expires_at=datetime.datetime(2026, 4, 1, tzinfo=UTC))
    expired = prepaid_credit_grant(customer=customer, currency="USD", amount="100.00", reason="expired",
                                   expires_at=datetime.datetime(2026, 2, 1, tzinfo=UTC))
    spent = prepaid_credit_consume(customer=customer, currency="USD", amount=D("40.00"), invoice_id="inv-1", on=NOW)
    assert spent == D("40.00")
    for grant in (never, late, soon, expired):
        grant.refresh_from_db()
    # soon 15.00 (all), late 20.00 (all), never 5.00 of 50.00; the expired grant is untouched
    assert (soon.remaining, late.remaining, never.remaining, expired.remaining) == (
        D("0"), D("0"), D("45.00"), D("100.00"))
    assert prepaid_credit_available(customer=customer, currency="USD", on=NOW) == D("45.00")


@db
def test_consume_is_idempotent_per_invoice_and_capped_by_available():
    customer = CustomerFactory()
    prepaid_credit_grant(customer=customer, currency="USD", amount="30.00", reason="promo")
    assert prepaid_credit_consume(customer=customer, currency="USD", amount=D("96.13"), invoice_id="inv-1") == D("30.00")
    assert prepaid_credit_consume(customer=customer, currency="USD", amount=D("96.13"), invoice_id="inv-1") == D("30.00")
    assert CreditGrantUsage.objects.filter(invoice_id="inv-1").count() == 1
    assert prepaid_credit_consume(customer=customer, currency="USD", amount=D("10.00"), invoice_id="inv-2") == D("0.00")
    assert prepaid_credit_available(customer=customer, currency="USD") == D("0.00")


@db
def test_credit_in_another_currency_is_never_applied():
    customer = CustomerFactory(currency="USD")
    prepaid_credit_grant(customer=customer, currency="EUR", amount="50.00", reason="EUR promo")
    balance_adjust(customer=customer, currency="EUR", amount="25.00", description="EUR goodwill")
    assert prepaid_credit_consume(customer=customer, currency="USD", amount=D("40.00"), invoice_id="inv-1") == D("0.00")
    assert credit_balance_apply(customer=customer, currency="USD", amount=D("40.00"), invoice_id="inv-1") == D("0.00")
    assert customer_credit_balance(customer=customer, currency="EUR") == D("25.00")
    assert prepaid_credit_available(customer=customer, currency="EUR") == D("50.00")
    assert customer_credit_balance(customer=customer, currency="USD") == D("0.00")


# --- credit balance ------------------------------------------------------------------------------

@db
def test_balance_ledger_apply_and_idempotency():
    customer = CustomerFactory()
    credit_balance_credit_from_credit_note(customer=customer, currency="USD", amount="15.00", credit_note_id="cn-1",
                                           invoice_id="inv-0")
    balance_adjust(customer=customer, currency="USD", amount="5.00", description="goodwill", actor="finance")
    assert customer_credit_balance(customer=customer, currency="USD") == D("20.00")
    assert credit_balance_apply(customer=customer, currency="USD", amount=D("20.00"), invoice_id="inv-1") == D("20.00")
    assert credit_balance_apply(customer=customer, currency="USD", amount=D("20.00"), invoice_id="inv-1") == D("20.00")
    assert customer_credit_balance(customer=customer, currency="USD") == D("0.00")
    kinds = sorted(CustomerBalanceTransaction.objects.filter(customer=customer).values_list("kind", "amount"))
    assert kinds == [("adjustment", D("5.00")), ("applied_to_invoice", D("-20.00")), ("credit_note", D("15.00"))]


@db
def test_apply_is_capped_by_balance():
    customer = CustomerFactory()
    balance_adjust(customer=customer, currency="USD", amount="12.50", description="goodwill")
    assert credit_balance_apply(customer=customer, currency="USD", amount=D("30.00"), invoice_id="inv-1") == D("12.50")
    assert customer_credit_balance(customer=customer, currency="USD") == D("0.00")


@db
def test_adjust_cannot_take_the_balance_below_zero():
    customer = CustomerFactory()
    balance_adjust(customer=customer, currency="USD", amount="10.00", description="goodwill")
    with pytest.raises(ConflictError) as exc:
        balance_adjust(customer=customer, currency="USD", amount="-10.01", description="too much")
    assert exc.value.code == "insufficient_credit_balance"
    balance_adjust(customer=customer, currency="USD", amount="-10.00", description="reverse goodwill")
    assert customer_credit_balance(customer=customer, currency="USD") == D("0.00")
    with pytest.raises(ApplicationError):
        balance_adjust(customer=customer, currency="USD", amount="0", description="nothing")
    with pytest.raises(ApplicationError):
        balance_adjust(customer=customer, currency="USD", amount="1", description="")


@db
def test_net_credit_invoice_and_credit_note_credit_once():
    customer = CustomerFactory()
    first = credit_balance_credit_from_invoice(customer=customer, currency="USD", amount=D("33.00"), invoice_id="inv-9")
    again = credit_balance_credit_from_invoice(customer=customer, currency="USD", amount=D("33.00"), invoice_id="inv-9")
    assert first.pk == again.pk
    with pytest.raises(ConflictError):
        credit_balance_credit_from_invoice(customer=customer, currency="USD", amount=D("34.00"), invoice_id="inv-9")
    credit_balance_credit_from_credit_note(customer=customer, currency="USD", amount="7.00", credit_note_id="cn-1")
    credit_balance_credit_from_credit_note(customer=customer, currency="USD", amount="7.00", credit_note_id="cn-1")
    assert customer_credit_balance(customer=customer, currency="USD") == D("40.00")


@db
def test_kwd_balance_keeps_three_decimals():
    customer = CustomerFactory(currency="KWD")
    balance_adjust(customer=customer, currency="KWD", amount="1.234", description="fils")
    assert customer_credit_balance(customer=customer, currency="KWD") == D("1.234")
    with pytest.raises(ApplicationError):
        balance_adjust(customer=customer, currency="KWD", amount="1.2345", description="too precise")


# --- races ---------------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_two_invoices_consuming_prepaid_at_once_never_overspend():
    customer = CustomerFactory()
    prepaid_credit_grant(customer=customer, currency="USD", amount="50.00", reason="promo")
    outcome = race(
        lambda: prepaid_credit_consume(customer=customer, currency="USD", amount=D("40.00"), invoice_id="inv-a"),
        lambda: prepaid_credit_consume(customer=customer, currency="USD", amount=D("40.00"), invoice_id="inv-b"),
        barrier_timeout=10, join_timeout=30,
    )
    results, failures = outcome.returned, outcome.errors
    assert failures == []
    assert sorted(results) == [D("10.00"), D("40.00")]
    assert prepaid_credit_available(customer=customer, currency="USD") == D("0.00")


@pytest.mark.django_db(transaction=True)
def test_same_invoice_applying_balance_twice_at_once_applies_once():
    customer = CustomerFactory()
    balance_adjust(customer=customer, currency="USD", amount="20.00", description="goodwill")
    outcome = race(
        lambda: credit_balance_apply(customer=customer, currency="USD", amount=D("15.00"), invoice_id="inv-a"),
        lambda: credit_balance_apply(customer=customer, currency="USD", amount=D("15.00"), invoice_id="inv-a"),
        barrier_timeout=10, join_timeout=30,
    )
    results, failures = outcome.returned, outcome.errors
    assert failures == []
    assert results == [D("15.00"), D("15.00")]
    assert customer_credit_balance(customer=customer, currency="USD") == D("5.00")
    assert CustomerBalanceTransaction.objects.filter(kind="applied_to_invoice").count() == 1


@pytest.mark.django_db(transaction=True)
def test_adjustment_and_application_at_once_keep_the_balance_non_negative():
    customer = CustomerFactory()
    balance_adjust(customer=customer, currency="USD", amount="20.00", description="goodwill")
    outcome = race(
        lambda: credit_balance_apply(customer=customer, currency="USD", amount=D("20.00"), invoice_id="inv-a"),
        lambda: balance_adjust(customer=customer, currency="USD", amount="-20.00", description="reverse"),
        barrier_timeout=10, join_timeout=30,
    )
    results, failures = outcome.returned, outcome.errors
    assert len(results) + len(failures) == 2
    assert all(isinstance(f, ConflictError) for f in failures)
    assert customer_credit_balance(customer=customer, currency="USD") >= 0
    assert customer_credit_balance(customer=customer, currency="USD") == D("0.00")
