"""Stripe decline codes by retry class, as data (copied from the shared reference
`decline_codes.md`; CI never reads files outside the repository).

`classify()` turns a failed charge's codes into a `Classification`: its class (soft,
customer_action, hard, merchant_fix), how many retries the code allows and any timing hint.
Precedence (DESIGN.md §7, docs/decisions.md):
1. `network_advice_code` (Mastercard MAC) and 2. `advice_code`, when Stripe sends them and they are
   in ADVICE below: a "never retry" advice (MAC 03/21, `do_not_try_again`) makes any code hard, a
   "new card data" advice (MAC 01, `confirm_card_data`) makes a retryable code customer_action;
   a "try later" advice (MAC 02, `try_again_later`) makes an unknown code soft with the full policy
   budget, but never relaxes a code the table says cannot be fixed by retrying the same method
   (an advice is the issuer's hint for retries, not a licence to charge a lost card again);
3. the table by `decline_code` (then `failure_code`, for charges declined without one);
4. anything else: soft with at most `UNKNOWN_MAX_RETRIES` retries.
"""

from __future__ import annotations

from dataclasses import dataclass

SOFT = "soft"
CUSTOMER_ACTION = "customer_action"
HARD = "hard"
MERCHANT_FIX = "merchant_fix"
CLASSES = (SOFT, CUSTOMER_ACTION, HARD, MERCHANT_FIX)
STRICTNESS = {SOFT: 0, CUSTOMER_ACTION: 1, HARD: 2, MERCHANT_FIX: 2}

UNKNOWN_MAX_RETRIES = 3

# code → (class, options). Options: max_retries (a cap below the policy's), payday (align to pay
# days), first_retry_hours (the first retry within hours), min_wait_hours, check_no_success.
DECLINE_CODES: dict[str, tuple[str, dict]] = {
    # soft: retry on the policy's schedule
    "insufficient_funds": (SOFT, {"payday": True}),
    "withdrawal_count_limit_exceeded": (SOFT, {}),
    "card_velocity_exceeded": (SOFT, {"min_wait_hours": 24}),
    "try_again_later": (SOFT, {}),
    "issuer_not_available": (SOFT, {}),
    "processing_error": (SOFT, {"first_retry_hours": 2}),
    "reenter_transaction": (SOFT, {}),
    "generic_decline": (SOFT, {}),
    "do_not_honor": (SOFT, {"max_retries": 3}),
    "call_issuer": (SOFT, {"max_retries": 3}),
    "approve_with_id": (SOFT, {}),
    "no_action_taken": (SOFT, {}),
    "testmode_decline": (SOFT, {}),
    "duplicate_transaction": (SOFT, {"check_no_success": True}),
    # customer action: no retry on the same method; ask for a new method or authentication
    **{code: (CUSTOMER_ACTION, {}) for code in (
        "expired_card", "incorrect_cvc", "invalid_cvc", "incorrect_zip", "incorrect_pin", "invalid_pin",
        "offline_pin_required", "online_or_offline_pin_required", "invalid_expiry_year", "authentication_required",
        "card_not_supported", "currency_not_supported", "requested_block_on_incorrect_cvc")},
    # hard: never retry this method; require a new one; flag for review
    **{code: (HARD, {}) for code in (
        "lost_card", "stolen_card", "pickup_card", "fraudulent", "merchant_blacklist", "restricted_card",
        "security_violation", "stop_payment_order", "revocation_of_authorization",
        "revocation_of_all_authorizations", "transaction_not_allowed", "not_permitted", "service_not_allowed",
        "do_not_try_again", "previously_declined_do_not_retry", "invalid_account",
        "new_account_information_available", "incorrect_number", "invalid_number", "pin_try_exceeded",
        "highest_risk_level")},
    # merchant fix: no retry until the invoice or integration is fixed; alert finance
    "invalid_amount": (MERCHANT_FIX, {}),
    # failure codes without a decline code (our own and Stripe's)
    "no_payment_method": (CUSTOMER_ACTION, {}),
}

# Advice codes (Stripe `advice_code`, Mastercard `network_advice_code`) → the class they point to.
ADVICE: dict[tuple[str, str], str] = {
    ("network", "01"): CUSTOMER_ACTION,  # new account information available
    ("network", "02"): SOFT,             # cannot approve at this time, try again later
    ("network", "03"): HARD,             # do not try again
    ("network", "21"): HARD,             # payment cancellation (stop recurring)
    ("advice", "confirm_card_data"): CUSTOMER_ACTION,
    ("advice", "try_again_later"): SOFT,
    ("advice", "do_not_try_again"): HARD,
}


@dataclass(frozen=True)
class Classification:
    decline_class: str
    code: str
    source: str  # "network_advice_code" | "advice_code" | "decline_code" | "failure_code" | "unknown"
    max_retries: int | None = None
    payday: bool = False
    first_retry_hours: int | None = None
    min_wait_hours: int | None = None
    check_no_success: bool = False

    @property
    def retries_same_method(self) -> bool:
        return self.decline_class == SOFT

    def as_inputs(self) -> dict:
        return {"decline_class": self.decline_class, "code": self.code, "source": self.source,
                "max_retries": self.max_retries, "payday": self.payday}


def classify(*, decline_code: str = "", failure_code: str = "", advice_code: str = "",
             network_advice_code: str = "") -> Classification:
    code = (decline_code or failure_code or "").strip()
    base_class, options, source = None, {}, "unknown"
    for name, value in (("decline_code", decline_code), ("failure_code", failure_code)):
        if value and value in DECLINE_CODES:
            base_class, options = DECLINE_CODES[value]
            code, source = value, name
            break
    for kind, value, label in (("network", network_advice_code, "network_advice_code"),
                               ("advice", advice_code, "advice_code")):
        advised = ADVICE.get((kind, (value or "").strip()))
        if advised is None:
            continue
        if base_class is None:
            base_class, source = advised, label
            break
        if STRICTNESS[advised] > STRICTNESS[base_class]:
            return Classification(decline_class=advised, code=code, source=label)
    if base_class is None:
        return Classification(decline_class=SOFT, code=code, source="unknown", max_retries=UNKNOWN_MAX_RETRIES)
    return Classification(decline_class=base_class, code=code, source=source, **options)
