"""The Stripe gateway: the one module that imports `stripe` (DESIGN.md §7).

Everything else in the product talks to Stripe through these functions and receives our own
result types, never a Stripe object or exception. Amounts cross this boundary as Decimals in major
units and become integer minor units here only (`common.money.to_minor_units`: JPY 0 decimals,
KWD 3). Offline (tests, demo) `STRIPE_API_BASE` points the SDK at the local sandbox
(`manage.py stripe_sandbox`); unset, the SDK talks to Stripe itself with `STRIPE_API_KEY`.

Outbound calls that move money carry idempotency keys derived from our own rows
(`payment_attempt:<id>`, `refund:<id>`), so a retried call, a crashed worker or two racing
callers can never charge or refund twice."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from decimal import Decimal

import stripe
from django.conf import settings

from common.money import from_minor_units, to_minor_units

# The SDK logs every request at INFO; our own attempt and refund rows are the record.
logging.getLogger("stripe").setLevel(logging.WARNING)


class GatewayError(Exception):
    """Stripe could not be reached or refused the request for a reason that is not a card decline."""

    def __init__(self, message: str, *, code: str = "gateway_error"):
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class CardDetails:
    stripe_id: str
    brand: str
    last4: str
    exp_month: int | None
    exp_year: int | None
    customer: str | None = None


@dataclass(frozen=True)
class ChargeResult:
    """The outcome of one off-session charge, in our own words."""

    status: str  # "succeeded" | "failed" | "pending"
    payment_intent: str = ""
    charge: str = ""
    amount: Decimal | None = None
    failure_code: str = ""
    decline_code: str = ""
    advice_code: str = ""
    network_advice_code: str = ""
    message: str = ""
    raw: dict = field(default_factory=dict, compare=False)

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


@dataclass(frozen=True)
class RefundResult:
    status: str  # "succeeded" | "pending" | "failed"
    refund: str = ""
    amount: Decimal | None = None
    message: str = ""


def _client() -> stripe.StripeClient:
    base = settings.STRIPE_API_BASE or None
    kwargs = {"max_network_retries": 2}
    if base:
        kwargs["base_addresses"] = {"api": base}
    return stripe.StripeClient(settings.STRIPE_API_KEY, **kwargs)


def _value(obj, name, default=None):
    if obj is None:
        return default
    try:
        return obj[name] if name in obj else default
    except (TypeError, KeyError):
        return getattr(obj, name, default)


def _card(pm) -> CardDetails:
    card = _value(pm, "card") or {}
    return CardDetails(stripe_id=pm["id"], brand=_value(card, "brand", "") or "", last4=_value(card, "last4", "") or "",
                       exp_month=_value(card, "exp_month"), exp_year=_value(card, "exp_year"),
                       customer=_value(pm, "customer"))


def customer_create(*, name: str, email: str, reference: str) -> str:
    """A Stripe customer for one of ours; `reference` (our customer id) makes the call idempotent."""
    try:
        customer = _client().v1.customers.create(
            params={"name": name, "email": email or None, "metadata": {"ledgerline_customer": reference}},
            options={"idempotency_key": f"customer:{reference}"})
    except stripe.StripeError as exc:
        raise GatewayError(_message(exc), code=_code(exc)) from exc
    return customer["id"]


def payment_method_attach(*, stripe_customer: str, payment_method: str) -> CardDetails:
    try:
        pm = _client().v1.payment_methods.attach(payment_method, params={"customer": stripe_customer})
    except stripe.CardError as exc:
        raise GatewayError(_message(exc), code=_value(exc.error, "decline_code") or exc.code or "card_declined") from exc
    except stripe.InvalidRequestError as exc:
        raise GatewayError(_message(exc), code="invalid_payment_method") from exc
    except stripe.StripeError as exc:
        raise GatewayError(_message(exc), code=_code(exc)) from exc
    return _card(pm)


def payment_method_detach(*, payment_method: str) -> None:
    try:
        _client().v1.payment_methods.detach(payment_method)
    except stripe.StripeError as exc:
        raise GatewayError(_message(exc), code=_code(exc)) from exc


def payment_methods_list(*, stripe_customer: str) -> list[CardDetails]:
    try:
        listing = _client().v1.payment_methods.list(params={"customer": stripe_customer, "type": "card"})
    except stripe.StripeError as exc:
        raise GatewayError(_message(exc), code=_code(exc)) from exc
    return [_card(pm) for pm in listing["data"]]


def charge_off_session(*, stripe_customer: str, payment_method: str, amount: Decimal, currency: str,
                       idempotency_key: str, metadata: dict | None = None, description: str = "") -> ChargeResult:
    """Confirm an off-session PaymentIntent for `amount` (major units). Card declines are a failed
    result, not an exception; only transport/configuration problems raise GatewayError."""
    params = {"amount": to_minor_units(amount, currency), "currency": currency.lower(), "customer": stripe_customer,
              "payment_method": payment_method, "confirm": True, "off_session": True,
              "metadata": {k: str(v) for k, v in (metadata or {}).items()}}
    if description:
        params["description"] = description[:350]
    try:
        intent = _client().v1.payment_intents.create(params=params, options={"idempotency_key": idempotency_key})
    except stripe.CardError as exc:
        err = exc.error
        intent = _value(err, "payment_intent") or {}
        return ChargeResult(
            status="failed", payment_intent=_value(intent, "id", "") or "", charge=_value(err, "charge", "") or "",
            failure_code=exc.code or "card_declined", decline_code=_value(err, "decline_code", "") or "",
            advice_code=_value(err, "advice_code", "") or "", network_advice_code=_value(err, "network_advice_code", "") or "",
            message=_message(exc), raw={"error": exc.json_body})
    except stripe.StripeError as exc:
        raise GatewayError(_message(exc), code=_code(exc)) from exc
    return _intent_result(intent, currency)


def _intent_result(intent, currency: str) -> ChargeResult:
    status = intent["status"]
    charge = _value(intent, "latest_charge")
    charge_id = charge if isinstance(charge, str) else _value(charge, "id", "")
    amount = from_minor_units(int(intent["amount"]), currency)
    if status == "succeeded":
        return ChargeResult(status="succeeded", payment_intent=intent["id"], charge=charge_id or "", amount=amount)
    if status in ("processing", "requires_capture"):
        return ChargeResult(status="pending", payment_intent=intent["id"], charge=charge_id or "", amount=amount)
    error = _value(intent, "last_payment_error") or {}
    return ChargeResult(status="failed", payment_intent=intent["id"], charge=charge_id or "", amount=amount,
                        failure_code=_value(error, "code", "") or status, decline_code=_value(error, "decline_code", "") or "",
                        advice_code=_value(error, "advice_code", "") or "",
                        network_advice_code=_value(error, "network_advice_code", "") or "",
                        message=_value(error, "message", "") or f"PaymentIntent is {status}")


def payment_intent_get(*, payment_intent: str, currency: str) -> ChargeResult:
    try:
        intent = _client().v1.payment_intents.retrieve(payment_intent)
    except stripe.StripeError as exc:
        raise GatewayError(_message(exc), code=_code(exc)) from exc
    return _intent_result(intent, currency)


def refund_create(*, payment_intent: str, amount: Decimal, currency: str, idempotency_key: str,
                  metadata: dict | None = None) -> RefundResult:
    try:
        refund = _client().v1.refunds.create(
            params={"payment_intent": payment_intent, "amount": to_minor_units(amount, currency),
                    "metadata": {k: str(v) for k, v in (metadata or {}).items()}},
            options={"idempotency_key": idempotency_key})
    except stripe.StripeError as exc:
        raise GatewayError(_message(exc), code=_code(exc)) from exc
    status = refund["status"] if refund["status"] in ("succeeded", "pending", "failed") else "pending"
    return RefundResult(status=status, refund=refund["id"], amount=from_minor_units(int(refund["amount"]), currency))


def refunds_list(*, payment_intent: str, currency: str) -> list[RefundResult]:
    try:
        listing = _client().v1.refunds.list(params={"payment_intent": payment_intent})
    except stripe.StripeError as exc:
        raise GatewayError(_message(exc), code=_code(exc)) from exc
    return [RefundResult(status=r["status"], refund=r["id"], amount=from_minor_units(int(r["amount"]), currency))
            for r in listing["data"]]


def webhook_event_construct(*, payload: bytes, signature: str) -> dict:
    """Verify a webhook's `Stripe-Signature` with STRIPE_WEBHOOK_SECRET (5-minute tolerance) and
    return the event as a plain dict. Raises ValueError when the signature or payload is invalid."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise ValueError("STRIPE_WEBHOOK_SECRET is not configured")
    try:
        stripe.WebhookSignature.verify_header(payload.decode("utf-8"), signature or "", secret, tolerance=300)
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as exc:
        raise ValueError(f"invalid signature: {exc}") from exc

    try:
        event = json.loads(payload)
    except ValueError as exc:
        raise ValueError("invalid payload") from exc
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise ValueError("invalid payload: an event needs an id and a type")
    return event


def _message(exc: stripe.StripeError) -> str:
    return (getattr(exc, "user_message", None) or str(exc) or exc.__class__.__name__)[:500]


def _code(exc: stripe.StripeError) -> str:
    return getattr(exc, "code", None) or exc.__class__.__name__.lower()
