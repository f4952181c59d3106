"""Payment services: attach methods, charge invoices off-session, record manual payments, refund,
apply disputes (DESIGN.md §7). Views, tasks, admin actions and webhook handlers only call these.

Lock order on every path: customer → invoice → payment attempt → payment → refund (each by pk).
The invoice row lock serializes everything that changes what an invoice is owed, so a card
payment confirmed by a webhook, the synchronous charge result, a manual payment and a dispute can
race freely: whichever runs second sees the first one's amount due.

Collection of one invoice:
1. `payment_attempt_create` (one short transaction, the invoice locked): checks something is due
   and a method exists, numbers the attempt, writes the attempt and its pending card Payment. A
   partial unique index allows one pending attempt per invoice, so two finalize hooks or two
   "pay now" clicks can never put two charges in flight.
2. `payment_attempt_execute` (no transaction held): the off-session PaymentIntent, with the
   idempotency key `payment_attempt:<id>`: a retried task or a duplicate call replays Stripe's
   first answer instead of charging again.
3. `payment_attempt_resolve` (one short transaction): records the outcome once (the attempt row is
   re-read under lock; a second resolution — the webhook after the synchronous answer, or the
   reverse — changes nothing). A success applies at most what is still due; a card payment that
   arrives after the invoice was paid otherwise is refunded (rule `refund_overpayment`), so an
   invoice is never paid twice.
"""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from common.audit import actor_label, actor_user, audit_record
from common.errors import ApplicationError, ConflictError
from common.locks import row_lock
from common.money import quantize_money
from customers.locks import customer_lock
from customers.models import Customer
from invoicing.models import CreditNote, Invoice, InvoiceStatus
from invoicing.services import invoice_payment_apply, invoice_payment_check, invoice_payment_reverse
from payments import gateway
from payments.models import (MANUAL_METHODS, AttemptStatus, Payment, PaymentAttempt, PaymentKind, PaymentMethod,
                             PaymentStatus, Refund, RefundStatus)

logger = logging.getLogger(__name__)

RULE_AUTO_CHARGE = "charge_automatically_on_finalize"
RULE_RETRY_NOW = "manual_retry"
RULE_OVERPAYMENT = "refund_overpayment"
NO_PAYMENT_METHOD = "no_payment_method"


# --- payment methods ---------------------------------------------------------------------------

def stripe_customer_ensure(*, customer: Customer) -> str:
    """The customer's Stripe id, created once (the gateway call is idempotent per customer)."""
    if customer.stripe_customer_id:
        return customer.stripe_customer_id
    try:
        stripe_id = gateway.customer_create(name=customer.name, email=getattr(customer, "invoice_email", "") or "",
                                            reference=str(customer.pk))
    except gateway.GatewayError as exc:
        raise ApplicationError(f"Stripe is unavailable: {exc.message}", code="gateway_error", status_code=502) from exc
    with transaction.atomic():
        locked = customer_lock(customer.pk)
        if not locked.stripe_customer_id:
            locked.stripe_customer_id = stripe_id
            locked.save(update_fields=["stripe_customer_id", "updated_at"])
    customer.stripe_customer_id = locked.stripe_customer_id
    return customer.stripe_customer_id


def payment_method_attach(*, customer: Customer, stripe_payment_method: str, default: bool = True,
                          actor=None) -> PaymentMethod:
    """Attach a Stripe PaymentMethod (created by Stripe.js, or a Stripe test id) to the customer and
    keep its card summary; `default` makes it the one charged automatically."""
    if not isinstance(stripe_payment_method, str) or not stripe_payment_method.startswith("pm_"):
        raise ApplicationError("Expected a Stripe PaymentMethod id (pm_…).",
                               fields={"stripe_payment_method": ["must be a Stripe PaymentMethod id (pm_...)"]})
    stripe_customer = stripe_customer_ensure(customer=customer)
    try:
        card = gateway.payment_method_attach(stripe_customer=stripe_customer, payment_method=stripe_payment_method)
    except gateway.GatewayError as exc:
        status = 502 if exc.code in ("apiconnectionerror", "apierror", "gateway_error") else 400
        raise ApplicationError(f"Stripe refused the payment method: {exc.message}", code="invalid_payment_method",
                               fields={"stripe_payment_method": [exc.message]}, status_code=status) from exc
    with transaction.atomic():
        customer = customer_lock(customer.pk)
        if default:
            PaymentMethod.objects.filter(customer=customer, is_default=True).update(is_default=False)
        method, _ = PaymentMethod.objects.update_or_create(
            stripe_payment_method=card.stripe_id,
            defaults=dict(customer=customer, brand=card.brand, last4=card.last4, exp_month=card.exp_month,
                          exp_year=card.exp_year, is_default=default, detached_at=None))
        audit_record(action="payment_method.attached", obj=method, actor=actor_label(actor),
                     actor_user=actor_user(actor), rule="manual",
                     inputs={"customer": customer.external_id, "customer_id": customer.pk, "brand": card.brand,
                             "last4": card.last4, "default": default, "requested": stripe_payment_method})
    return method


def payment_method_detach(*, payment_method: PaymentMethod, actor=None) -> PaymentMethod:
    try:
        gateway.payment_method_detach(payment_method=payment_method.stripe_payment_method)
    except gateway.GatewayError as exc:
        logger.warning("detaching %s in Stripe failed: %s", payment_method.stripe_payment_method, exc.message)
    with transaction.atomic():
        method = row_lock(PaymentMethod, payment_method.pk)
        method.detached_at = timezone.now()
        method.is_default = False
        method.save(update_fields=["detached_at", "is_default", "updated_at"])
        audit_record(action="payment_method.detached", obj=method, actor=actor_label(actor),
                     actor_user=actor_user(actor), rule="manual", inputs={"customer_id": method.customer_id})
    return method


def _default_method(customer_id) -> PaymentMethod | None:
    return (PaymentMethod.objects.filter(customer_id=customer_id, is_default=True, detached_at__isnull=True)
            .order_by("-created_at").first())


# --- card collection ---------------------------------------------------------------------------

def _attempt_create_locked(*, invoice: Invoice, payment_method: PaymentMethod | None, actor, rule: str,
                           require_method: bool) -> PaymentAttempt:
    """Inside a transaction holding the invoice lock: number and write the next attempt."""
    if invoice.status not in (InvoiceStatus.FINALIZED, InvoiceStatus.UNCOLLECTIBLE) or invoice.amount_due <= 0:
        raise ConflictError(f"Invoice {invoice.number or invoice.pk} has nothing due ({invoice.status}).",
                            code="nothing_due", fields={"invoice": ["nothing due"]})
    if payment_method is None:
        payment_method = _default_method(invoice.customer_id)
    elif payment_method.customer_id != invoice.customer_id or payment_method.detached_at is not None:
        raise ApplicationError("That payment method does not belong to the invoice's customer.",
                               fields={"payment_method": ["unknown payment method for this customer"]})
    if payment_method is None and require_method:
        raise ConflictError("The customer has no payment method to charge.", code=NO_PAYMENT_METHOD,
                            fields={"payment_method": ["the customer has no default payment method"]})
    if PaymentAttempt.objects.filter(invoice=invoice, status=AttemptStatus.PENDING).exists():
        raise ConflictError("A charge of this invoice is already in progress.", code="charge_in_progress",
                            fields={"invoice": ["a charge is in progress"]})
    number = (PaymentAttempt.objects.filter(invoice=invoice).aggregate(n=Max("attempt_number"))["n"] or 0) + 1
    attempt = PaymentAttempt.objects.create(
        invoice=invoice, customer_id=invoice.customer_id, payment_method=payment_method, attempt_number=number,
        amount=invoice.amount_due, currency=invoice.currency, rule=rule, actor=actor_label(actor))
    if payment_method is None:
        _attempt_fail(attempt, invoice=invoice, payment=None, failure_code=NO_PAYMENT_METHOD, decline_code="",
                      advice_code="", network_advice_code="",
                      message="The customer has no default payment method.", actor=actor)
        return attempt
    Payment.objects.create(invoice=invoice, customer_id=invoice.customer_id, amount=attempt.amount,
                           currency=attempt.currency, method=PaymentKind.CARD, attempt=attempt,
                           recorded_by=actor_label(actor))
    audit_record(action="payment.attempted", obj=attempt, actor=actor_label(actor), actor_user=actor_user(actor),
                 rule=rule, inputs={"invoice": str(invoice.pk), "customer": invoice.customer_id, "customer_external_id": invoice.customer.external_id,
                                    "amount": str(attempt.amount), "currency": attempt.currency,
                                    "attempt_number": number, "payment_method": payment_method.pk})
    return attempt


def payment_attempt_create(*, invoice: Invoice, payment_method: PaymentMethod | None = None, actor=None,
                           rule: str = RULE_RETRY_NOW) -> PaymentAttempt:
    with transaction.atomic():
        invoice = row_lock(Invoice, invoice.pk)
        try:
            with transaction.atomic():
                return _attempt_create_locked(invoice=invoice, payment_method=payment_method, actor=actor, rule=rule,
                                              require_method=True)
        except IntegrityError as exc:  # the one-pending-attempt index, should the check above ever be bypassed
            raise ConflictError("A charge of this invoice is already in progress.", code="charge_in_progress",
                                fields={"invoice": ["a charge is in progress"]}) from exc


def payment_attempt_execute(*, attempt_id, actor=None) -> PaymentAttempt:
    """Charge one pending attempt off-session (idempotency key `payment_attempt:<id>`) and record
    the answer. Safe to call twice: Stripe replays its first answer and the resolution is once."""
    attempt = PaymentAttempt.objects.select_related("invoice", "customer", "payment_method").get(pk=attempt_id)
    if attempt.status != AttemptStatus.PENDING or attempt.payment_method is None:
        return attempt
    invoice = attempt.invoice
    try:
        result = gateway.charge_off_session(
            stripe_customer=attempt.customer.stripe_customer_id, payment_method=attempt.payment_method.stripe_payment_method,
            amount=attempt.amount, currency=attempt.currency, idempotency_key=attempt.idempotency_key,
            metadata={"payment_attempt": attempt.pk, "invoice": invoice.pk, "invoice_number": invoice.number or ""},
            description=f"Invoice {invoice.number}")
    except gateway.GatewayError as exc:
        result = gateway.ChargeResult(status="failed", failure_code=exc.code or "gateway_error", message=exc.message)
    return payment_attempt_resolve(attempt_id=attempt.pk, result=result, actor=actor, source="charge")


def payment_charge_invoice(*, invoice: Invoice, payment_method: PaymentMethod | None = None, actor=None,
                           rule: str = RULE_RETRY_NOW) -> PaymentAttempt:
    """Charge what the invoice has due now on `payment_method` (default: the customer's default
    method) and return the attempt with its outcome. The entry point for "retry now" and dunning
    retries. 409 when nothing is due, no method exists or a charge is already in flight."""
    attempt = payment_attempt_create(invoice=invoice, payment_method=payment_method, actor=actor, rule=rule)
    return payment_attempt_execute(attempt_id=attempt.pk, actor=actor)


def _attempt_fail(attempt: PaymentAttempt, *, invoice: Invoice, payment: Payment | None, failure_code: str,
                  decline_code: str, advice_code: str, network_advice_code: str, message: str, actor,
                  payment_intent: str = "", charge: str = "", source: str = "charge") -> None:
    attempt.status = AttemptStatus.FAILED
    attempt.failure_code = failure_code[:64]
    attempt.decline_code = decline_code[:64]
    attempt.advice_code = advice_code[:64]
    attempt.network_advice_code = (network_advice_code or "")[:16]
    attempt.failure_message = message[:500]
    attempt.stripe_payment_intent = payment_intent or attempt.stripe_payment_intent
    attempt.stripe_charge = charge or attempt.stripe_charge
    attempt.completed_at = timezone.now()
    attempt.save(update_fields=["status", "failure_code", "decline_code", "advice_code", "network_advice_code",
                                "failure_message", "stripe_payment_intent", "stripe_charge", "completed_at",
                                "updated_at"])
    if payment is not None:
        payment.status = PaymentStatus.FAILED
        payment.failure_code, payment.decline_code = attempt.failure_code, attempt.decline_code
        payment.failure_message = attempt.failure_message
        payment.stripe_payment_intent = attempt.stripe_payment_intent
        payment.stripe_charge = attempt.stripe_charge
        payment.save(update_fields=["status", "failure_code", "decline_code", "failure_message",
                                    "stripe_payment_intent", "stripe_charge", "updated_at"])
    audit_record(action="payment.failed", obj=attempt, actor=actor_label(actor) if actor else "system",
                 actor_user=actor_user(actor), rule=attempt.rule or source,
                 inputs={"invoice": str(invoice.pk), "invoice_number": invoice.number, "customer": invoice.customer_id, "customer_external_id": invoice.customer.external_id,
                         "amount": str(attempt.amount), "currency": attempt.currency,
                         "attempt_number": attempt.attempt_number, "failure_code": attempt.failure_code,
                         "decline_code": attempt.decline_code, "advice_code": attempt.advice_code,
                         "network_advice_code": attempt.network_advice_code,
                         "payment_method": attempt.payment_method_id, "payment_intent": attempt.stripe_payment_intent,
                         "payment": str(payment.pk) if payment else None, "source": source})


def payment_attempt_resolve(*, attempt_id, result: gateway.ChargeResult, actor=None, source: str) -> PaymentAttempt:
    """Record a charge outcome once. `source` is "charge" (the synchronous answer) or "webhook"."""
    with transaction.atomic():
        invoice_id = PaymentAttempt.objects.values_list("invoice_id", flat=True).get(pk=attempt_id)
        invoice = row_lock(Invoice, invoice_id)
        attempt = row_lock(PaymentAttempt, attempt_id)
        if attempt.status == AttemptStatus.SUCCEEDED:
            return attempt
        if attempt.status == AttemptStatus.FAILED and not result.succeeded:
            return attempt
        payment = Payment.objects.select_for_update().filter(attempt=attempt).first()
        if result.status == "pending":
            attempt.stripe_payment_intent = result.payment_intent or attempt.stripe_payment_intent
            attempt.save(update_fields=["stripe_payment_intent", "updated_at"])
            if payment is not None and result.payment_intent and not payment.stripe_payment_intent:
                payment.stripe_payment_intent = result.payment_intent
                payment.save(update_fields=["stripe_payment_intent", "updated_at"])
            return attempt
        if not result.succeeded:
            _attempt_fail(attempt, invoice=invoice, payment=payment, failure_code=result.failure_code or "card_declined",
                          decline_code=result.decline_code, advice_code=result.advice_code,
                          network_advice_code=result.network_advice_code, message=result.message, actor=actor,
                          payment_intent=result.payment_intent, charge=result.charge, source=source)
            return attempt
        _attempt_succeed(attempt, invoice=invoice, payment=payment, result=result, actor=actor, source=source)
    return attempt


def _attempt_succeed(attempt: PaymentAttempt, *, invoice: Invoice, payment: Payment | None,
                     result: gateway.ChargeResult, actor, source: str) -> None:
    now = timezone.now()
    attempt.status = AttemptStatus.SUCCEEDED
    attempt.stripe_payment_intent = result.payment_intent or attempt.stripe_payment_intent
    attempt.stripe_charge = result.charge or attempt.stripe_charge
    attempt.failure_code = attempt.decline_code = attempt.advice_code = attempt.network_advice_code = ""
    attempt.failure_message = ""
    attempt.completed_at = now
    attempt.save(update_fields=["status", "stripe_payment_intent", "stripe_charge", "failure_code", "decline_code",
                                "advice_code", "network_advice_code", "failure_message", "completed_at", "updated_at"])
    if payment is None:  # a failed attempt without a payment row cannot succeed later; kept for safety
        payment = Payment.objects.create(invoice=invoice, customer_id=invoice.customer_id, amount=attempt.amount,
                                         currency=attempt.currency, method=PaymentKind.CARD, attempt=attempt)
    open_states = (InvoiceStatus.FINALIZED, InvoiceStatus.UNCOLLECTIBLE)
    applied = min(attempt.amount, invoice.amount_due) if invoice.status in open_states else Decimal(0)
    applied = quantize_money(max(applied, Decimal(0)), invoice.currency)
    payment.status = PaymentStatus.SUCCEEDED
    payment.stripe_payment_intent = attempt.stripe_payment_intent
    payment.stripe_charge = attempt.stripe_charge
    payment.failure_code = payment.decline_code = payment.failure_message = ""
    payment.paid_on = timezone.localdate()
    payment.amount_applied = applied
    payment.save(update_fields=["status", "stripe_payment_intent", "stripe_charge", "failure_code", "decline_code",
                                "failure_message", "paid_on", "amount_applied", "updated_at"])
    if applied > 0:
        invoice_payment_apply(invoice=invoice, amount=applied, paid_on=payment.paid_on, reference=payment.stripe_payment_intent,
                              actor=actor or "system", rule=f"card_payment_{source}",
                              inputs={"payment_id": str(payment.pk), "method": PaymentKind.CARD,
                                      "attempt_number": attempt.attempt_number})
    audit_record(action="payment.succeeded", obj=payment, actor=actor_label(actor) if actor else "system",
                 actor_user=actor_user(actor), rule=attempt.rule or source,
                 inputs={"invoice": str(invoice.pk), "invoice_number": invoice.number, "customer": invoice.customer_id, "customer_external_id": invoice.customer.external_id,
                         "amount": str(payment.amount), "applied": str(applied), "currency": payment.currency,
                         "method": PaymentKind.CARD, "attempt_number": attempt.attempt_number,
                         "payment_intent": payment.stripe_payment_intent, "source": source})
    excess = payment.amount - applied
    if excess > 0:
        _refund_create(payment=payment, amount=excess, credit_note=None, reason="paid twice: the invoice was already settled",
                       rule=RULE_OVERPAYMENT, actor=actor)


# --- manual payments ---------------------------------------------------------------------------

def payment_record_manual(*, invoice: Invoice, amount: Decimal | None, paid_on: date | None = None,
                          method: str = PaymentKind.BANK_TRANSFER, reference: str = "", currency: str | None = None,
                          actor=None) -> Payment:
    """A payment received outside Stripe (bank transfer, check, other): lowers the amount due,
    pays the invoice when nothing is left. More than is due is refused (400 naming `amount`)."""
    if method not in MANUAL_METHODS:
        raise ApplicationError(f"Unknown manual payment method '{method}'.",
                               fields={"method": [f"must be one of {', '.join(MANUAL_METHODS)}"]})
    with transaction.atomic():
        invoice = row_lock(Invoice, invoice.pk)
        if currency and currency.upper() != invoice.currency:
            raise ApplicationError(f"The invoice is in {invoice.currency}, not {currency}.", code="currency_mismatch",
                                   fields={"currency": [f"must be {invoice.currency}"]})
        amount = invoice_payment_check(invoice=invoice, amount=amount)
        paid_on = paid_on or timezone.localdate()
        payment = Payment.objects.create(invoice=invoice, customer_id=invoice.customer_id, amount=amount,
                                         currency=invoice.currency, status=PaymentStatus.SUCCEEDED, method=method,
                                         paid_on=paid_on, reference=reference, amount_applied=amount,
                                         recorded_by=actor_label(actor))
        invoice_payment_apply(invoice=invoice, amount=amount, paid_on=paid_on, reference=reference, actor=actor,
                              rule="manual_payment", inputs={"payment_id": str(payment.pk), "method": method})
        _audit_manual(payment, invoice=invoice, actor=actor)
    return payment


def _audit_manual(payment: Payment, *, invoice: Invoice, actor) -> None:
    audit_record(action="payment.succeeded", obj=payment, actor=actor_label(actor), actor_user=actor_user(actor),
                 rule="manual_payment",
                 inputs={"invoice": str(invoice.pk), "invoice_number": invoice.number, "customer": invoice.customer_id, "customer_external_id": invoice.customer.external_id,
                         "amount": str(payment.amount), "currency": payment.currency, "method": payment.method,
                         "date": payment.paid_on.isoformat(), "reference": payment.reference})


def payment_from_invoice_event(event) -> Payment | None:
    """`invoice.payment_recorded` written by `invoicing.services.invoice_mark_paid` (admin, legacy
    callers): write the Payment row it stands for, in the same transaction."""
    inputs = event.inputs or {}
    if event.rule != "manual_payment" or inputs.get("payment_id"):
        return None
    invoice = Invoice.objects.get(pk=event.object_id)
    method = inputs.get("method") or PaymentKind.BANK_TRANSFER
    amount = Decimal(str(inputs["amount"]))
    payment = Payment.objects.create(
        invoice=invoice, customer_id=invoice.customer_id, amount=amount, currency=invoice.currency,
        status=PaymentStatus.SUCCEEDED, method=method if method in MANUAL_METHODS else PaymentKind.OTHER,
        paid_on=date.fromisoformat(inputs["date"]), reference=inputs.get("reference", ""), amount_applied=amount,
        recorded_by=event.actor)
    _audit_manual(payment, invoice=invoice, actor=event.actor_user or event.actor)
    return payment


# --- refunds -----------------------------------------------------------------------------------

def _refund_create(*, payment: Payment, amount: Decimal, credit_note: CreditNote | None, reason: str, rule: str,
                   actor) -> Refund:
    """Inside a transaction holding the payment lock: reserve `amount` of the payment for a refund.
    Card refunds go to Stripe after commit; manual ones are recorded as paid out by finance."""
    card = payment.method == PaymentKind.CARD
    refund = Refund.objects.create(payment=payment, credit_note=credit_note, amount=amount, currency=payment.currency,
                                   status=RefundStatus.PENDING if card else RefundStatus.SUCCEEDED, reason=reason[:255],
                                   rule=rule, actor=actor_label(actor) if actor else "system")
    payment.amount_refunded += amount
    payment.status = PaymentStatus.REFUNDED if payment.amount_refunded >= payment.amount else PaymentStatus.PARTIALLY_REFUNDED
    payment.save(update_fields=["amount_refunded", "status", "updated_at"])
    audit_record(action="refund.created", obj=refund, actor=actor_label(actor) if actor else "system",
                 actor_user=actor_user(actor), rule=rule,
                 inputs={"payment": str(payment.pk), "invoice": str(payment.invoice_id), "customer": payment.customer_id,
                         "amount": str(amount), "currency": payment.currency, "method": payment.method,
                         "credit_note": str(credit_note.pk) if credit_note else None, "reason": reason,
                         "paid_out": "stripe" if card else "recorded as paid out by finance"})
    if card:
        refund_id = refund.pk
        transaction.on_commit(lambda: _enqueue_refund(refund_id))
    return refund


def _enqueue_refund(refund_id: int) -> None:
    from payments.tasks import refund_execute_task  # noqa: PLC0415 — cycle: payments.tasks imports this module

    try:
        refund_execute_task.delay(refund_id)
    except Exception:  # noqa: BLE001 - the row stays pending; the admin action retries it
        logger.exception("could not enqueue refund %s", refund_id)


def refunds_for_credit_note(*, credit_note: CreditNote, actor=None) -> list[Refund]:
    """A credit note with outcome `refund`: pay its total back over the invoice's payments, newest
    first (partial refunds allowed). Runs inside the credit note's transaction."""
    remaining = credit_note.total
    refunds = []
    payments = (Payment.objects.select_for_update()
                .filter(invoice_id=credit_note.invoice_id,
                        status__in=[PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED])
                .order_by("-created_at", "pk"))
    for payment in payments:
        if remaining <= 0:
            break
        refundable = payment.amount - payment.amount_refunded
        take = min(refundable, remaining)
        if take <= 0:
            continue
        refunds.append(_refund_create(payment=payment, amount=take, credit_note=credit_note,
                                      reason=f"credit note {credit_note.number}: {credit_note.reason}",
                                      rule="credit_note_refund", actor=actor))
        remaining -= take
    if remaining > 0:
        audit_record(action="credit_note.refund_unallocated", obj=credit_note, actor=actor_label(actor) if actor else "system",
                     rule="credit_note_refund",
                     inputs={"unallocated": str(remaining), "reason": "no payment left to refund it from"})
    return refunds


def refund_execute(*, refund_id: int) -> Refund:
    """Send a pending card refund to Stripe (idempotency key `refund:<id>`) and record the answer.
    A failed refund gives its amount back to the payment."""
    refund = Refund.objects.select_related("payment").get(pk=refund_id)
    if refund.status != RefundStatus.PENDING or refund.stripe_refund:
        return refund
    payment = refund.payment
    try:
        result = gateway.refund_create(payment_intent=payment.stripe_payment_intent, amount=refund.amount,
                                       currency=refund.currency, idempotency_key=refund.idempotency_key,
                                       metadata={"refund": refund.pk, "payment": payment.pk})
    except gateway.GatewayError as exc:
        result = gateway.RefundResult(status="failed", message=exc.message)
    with transaction.atomic():
        payment = row_lock(Payment, payment.pk)
        refund = row_lock(Refund, refund_id)
        if refund.status != RefundStatus.PENDING:
            return refund
        if result.status == "failed":
            refund.status = RefundStatus.FAILED
            refund.failure_message = result.message[:500]
            payment.amount_refunded -= refund.amount
            payment.status = (PaymentStatus.SUCCEEDED if payment.amount_refunded <= 0 else PaymentStatus.PARTIALLY_REFUNDED)
            payment.save(update_fields=["amount_refunded", "status", "updated_at"])
            audit_record(action="refund.failed", obj=refund, rule="stripe_refund",
                         inputs={"payment": str(payment.pk), "amount": str(refund.amount), "message": result.message})
        else:
            refund.status = RefundStatus.SUCCEEDED if result.status == "succeeded" else RefundStatus.PENDING
            refund.stripe_refund = result.refund
        refund.save(update_fields=["status", "failure_message", "stripe_refund", "updated_at"])
    return refund


def refund_record_external(*, payment: Payment, stripe_total_refunded: Decimal, actor="stripe") -> Refund | None:
    """`charge.refunded`: Stripe says more was refunded than we know of (a refund made in Stripe's
    dashboard): record the difference. Our own refunds already count, so a repeat changes nothing."""
    with transaction.atomic():
        row_lock(Invoice, payment.invoice_id)
        payment = row_lock(Payment, payment.pk)
        missing = min(stripe_total_refunded, payment.amount) - payment.amount_refunded
        if missing <= 0:
            Refund.objects.filter(payment=payment, status=RefundStatus.PENDING).exclude(stripe_refund="").update(
                status=RefundStatus.SUCCEEDED, updated_at=timezone.now())
            return None
        refund = _refund_create(payment=payment, amount=missing, credit_note=None, reason="refunded in Stripe",
                                rule="stripe_charge_refunded", actor=actor)
        refund.status = RefundStatus.SUCCEEDED
        refund.save(update_fields=["status", "updated_at"])
    return refund


# --- disputes ----------------------------------------------------------------------------------

def payment_dispute_open(*, payment: Payment, amount: Decimal, dispute_id: str, reason: str, actor="stripe") -> bool:
    """`charge.dispute.created`: the disputed amount is due again and the invoice is flagged.
    Once per payment (a replayed or second dispute event changes nothing)."""
    with transaction.atomic():
        invoice = row_lock(Invoice, payment.invoice_id)
        payment = row_lock(Payment, payment.pk)
        if payment.disputed_at is not None or payment.status not in (PaymentStatus.SUCCEEDED,
                                                                        PaymentStatus.PARTIALLY_REFUNDED):
            return False
        amount = min(quantize_money(amount, payment.currency), payment.amount)
        payment.disputed_amount = amount
        payment.disputed_at = timezone.now()
        payment.save(update_fields=["disputed_amount", "disputed_at", "updated_at"])
        reopened = min(amount, payment.amount_applied)
        invoice_payment_reverse(invoice=invoice, amount=reopened, actor=actor, rule="stripe_dispute_created",
                                reason=f"card payment disputed ({reason})", flag="disputed",
                                inputs={"payment": str(payment.pk), "dispute": dispute_id})
        audit_record(action="invoice.disputed", obj=invoice, actor=actor_label(actor), rule="stripe_dispute_created",
                     inputs={"payment": str(payment.pk), "dispute": dispute_id, "amount": str(amount),
                             "reopened": str(reopened), "reason": reason, "customer": invoice.customer_id, "customer_external_id": invoice.customer.external_id,
                             "amount_due": str(invoice.amount_due)})
    return True
