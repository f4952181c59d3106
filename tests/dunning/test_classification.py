"""Decline classification from the data table, with advice-code precedence."""

import pytest

from dunning.decline_codes import CUSTOMER_ACTION, DECLINE_CODES, HARD, MERCHANT_FIX, SOFT, classify


@pytest.mark.parametrize("code, expected", [
    ("insufficient_funds", SOFT), ("do_not_honor", SOFT), ("processing_error", SOFT), ("expired_card", CUSTOMER_ACTION),
    ("authentication_required", CUSTOMER_ACTION), ("stolen_card", HARD), ("lost_card", HARD), ("fraudulent", HARD),
    ("invalid_amount", MERCHANT_FIX),
])
def test_table(code, expected):
    assert classify(decline_code=code).decline_class == expected


def test_table_holds_every_reference_code_once():
    # 14 soft, 13 customer action, 21 hard, 1 merchant fix (decline_codes.md) + our no_payment_method.
    by_class = {}
    for code, (cls, _) in DECLINE_CODES.items():
        by_class.setdefault(cls, []).append(code)
    assert {k: len(v) for k, v in by_class.items()} == {SOFT: 14, CUSTOMER_ACTION: 14, HARD: 21, MERCHANT_FIX: 1}


def test_code_options():
    assert classify(decline_code="insufficient_funds").payday is True
    assert classify(decline_code="do_not_honor").max_retries == 3
    assert classify(decline_code="call_issuer").max_retries == 3
    assert classify(decline_code="processing_error").first_retry_hours == 2
    assert classify(decline_code="card_velocity_exceeded").min_wait_hours == 24


def test_unknown_codes_are_soft_with_three_retries():
    result = classify(decline_code="something_new")
    assert (result.decline_class, result.max_retries, result.source) == (SOFT, 3, "unknown")
    assert classify().max_retries == 3


def test_advice_codes_take_precedence_when_they_say_stop():
    # MAC 03 / 21 = never retry, whatever the decline code says.
    assert classify(decline_code="insufficient_funds", network_advice_code="03").decline_class == HARD
    assert classify(decline_code="generic_decline", network_advice_code="21").decline_class == HARD
    assert classify(decline_code="do_not_honor", advice_code="do_not_try_again").decline_class == HARD
    assert classify(decline_code="generic_decline", advice_code="confirm_card_data").decline_class == CUSTOMER_ACTION
    assert classify(decline_code="insufficient_funds", network_advice_code="03").source == "network_advice_code"
    # "try later" makes an unknown code soft with the policy's full budget...
    later = classify(decline_code="mystery", network_advice_code="02")
    assert (later.decline_class, later.max_retries, later.source) == (SOFT, None, "network_advice_code")
    # ...but never licenses retrying a card that cannot succeed again.
    assert classify(decline_code="stolen_card", advice_code="try_again_later").decline_class == HARD
    assert classify(decline_code="authentication_required", advice_code="try_again_later").decline_class == CUSTOMER_ACTION


def test_failure_code_without_decline_code():
    assert classify(failure_code="no_payment_method").decline_class == CUSTOMER_ACTION
