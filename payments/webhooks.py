"""Inbound Stripe webhooks (DESIGN.md §7, STYLE.md "Idempotency").

`webhook_receive` verifies the signature (gateway), stores the event once by (provider, event id)
in its own committed transaction before anything is handled, then handles it under the event
row's lock: a replay, or the same event delivered twice at once, is answered 200 and changes
nothing. Handlers find our rows by the PaymentIntent's metadata (`payment_attempt`) or ids and call
the same idempotent services as the synchronous path, so events arriving out of order (a
`payment_failed` after the success, a refund event before our own refund row is confirmed) and
unknown event types are harmless."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from common.errors import ApplicationError
from common.money import from_minor_units
from payments import gateway
from payments.models import Payment, PaymentAttempt, WebhookEvent, WebhookEventStatus
from payments.services import payment_attempt_resolve, payment_dispute_open, refund_record_external

logger = logging.getLogger(__name__)
PROVIDER = "stripe"


@dataclass
class WebhookOutcome:
    event: WebhookEvent
    replay: bool
    result: str


def webhook_receive(*, payload: bytes, signature: str) -> WebhookOutcome:
    try:
        data = gateway.webhook_event_construct(payload=payload, signature=signature)
    except ValueError as exc:
        raise ApplicationError(f"Invalid Stripe webhook: {exc}", code="invalid_signature",
                               fields={"Stripe-Signature": [str(exc)]}) from exc
    WebhookEvent.objects.get_or_create(provider=PROVIDER, event_id=data["id"],
                                       defaults={"type": data["type"][:120], "payload": data})
    try:
        with transaction.atomic():
            event = WebhookEvent.objects.select_for_update().get(provider=PROVIDER, event_id=data["id"])
            if event.processed_at is not None:
                event.deliveries += 1
                event.save(update_fields=["deliveries"])
                return WebhookOutcome(event=event, replay=True, result=event.result)
            handler = HANDLERS.get(event.type)
            result = handler(event.payload) if handler else "ignored: unhandled event type"
            event.status = WebhookEventStatus.IGNORED if result.startswith("ignored") else WebhookEventStatus.PROCESSED
            event.result = result[:500]
            event.processed_at = timezone.now()
            event.save(update_fields=["status", "result", "processed_at"])
            return WebhookOutcome(event=event, replay=False, result=result)
    except Exception as exc:
        WebhookEvent.objects.filter(provider=PROVIDER, event_id=data["id"], processed_at__isnull=True).update(
            status=WebhookEventStatus.FAILED, result=f"{exc.__class__.__name__}: {exc}"[:500])
        raise


def _object(payload: dict) -> dict:
    obj = (payload.get("data") or {}).get("object")
    return obj if isinstance(obj, dict) else {}


def _attempt_for_intent(intent: dict) -> PaymentAttempt | None:
    metadata = intent.get("metadata") or {}
    attempt_id = metadata.get("payment_attempt")
    if attempt_id and str(attempt_id).isdigit():
        attempt = PaymentAttempt.objects.filter(pk=int(attempt_id)).first()
        if attempt is not None and (not attempt.stripe_payment_intent or attempt.stripe_payment_intent == intent.get("id")):
            return attempt
    if intent.get("id"):
        return PaymentAttempt.objects.filter(stripe_payment_intent=intent["id"]).first()
    return None


def _charge_id(intent: dict) -> str:
    charge = intent.get("latest_charge")
    if isinstance(charge, dict):
        return charge.get("id") or ""
    return charge or ""


def on_payment_intent_succeeded(payload: dict) -> str:
    intent = _object(payload)
    attempt = _attempt_for_intent(intent)
    if attempt is None:
        return "ignored: no attempt for this PaymentIntent"
    result = gateway.ChargeResult(status="succeeded", payment_intent=intent.get("id", ""), charge=_charge_id(intent))
    attempt = payment_attempt_resolve(attempt_id=attempt.pk, result=result, actor="stripe", source="webhook")
    return f"attempt {attempt.pk}: {attempt.status}"


def on_payment_intent_failed(payload: dict) -> str:
    intent = _object(payload)
    attempt = _attempt_for_intent(intent)
    if attempt is None:
        return "ignored: no attempt for this PaymentIntent"
    error = intent.get("last_payment_error") or {}
    result = gateway.ChargeResult(status="failed", payment_intent=intent.get("id", ""), charge=_charge_id(intent),
                                  failure_code=error.get("code") or "card_declined",
                                  decline_code=error.get("decline_code") or "", advice_code=error.get("advice_code") or "",
                                  network_advice_code=error.get("network_advice_code") or "",
                                  message=error.get("message") or "")
    attempt = payment_attempt_resolve(attempt_id=attempt.pk, result=result, actor="stripe", source="webhook")
    return f"attempt {attempt.pk}: {attempt.status}"


def _payment_for(obj: dict) -> Payment | None:
    intent = obj.get("payment_intent")
    if isinstance(intent, dict):
        intent = intent.get("id")
    if intent:
        payment = Payment.objects.filter(stripe_payment_intent=intent).first()
        if payment:
            return payment
    charge = obj.get("charge") if obj.get("object") != "charge" else obj.get("id")
    if charge:
        return Payment.objects.filter(stripe_charge=charge).first()
    return None


def on_charge_refunded(payload: dict) -> str:
    charge = _object(payload)
    payment = _payment_for(charge)
    if payment is None:
        return "ignored: no payment for this charge"
    total = from_minor_units(int(charge.get("amount_refunded") or 0), payment.currency)
    refund = refund_record_external(payment=payment, stripe_total_refunded=total)
    return f"payment {payment.pk}: " + (f"recorded external refund {refund.pk}" if refund else "refunds already known")


def on_dispute_created(payload: dict) -> str:
    dispute = _object(payload)
    payment = _payment_for(dispute)
    if payment is None:
        return "ignored: no payment for this dispute"
    amount = from_minor_units(int(dispute.get("amount") or 0), payment.currency)
    opened = payment_dispute_open(payment=payment, amount=amount, dispute_id=dispute.get("id", ""),
                                  reason=dispute.get("reason") or "")
    return f"payment {payment.pk}: " + ("dispute opened" if opened else "dispute already known")


HANDLERS = {
    "payment_intent.succeeded": on_payment_intent_succeeded,
    "payment_intent.payment_failed": on_payment_intent_failed,
    "charge.refunded": on_charge_refunded,
    "charge.dispute.created": on_dispute_created,
}
