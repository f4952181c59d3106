"""Domain-event handlers (common.hooks), subscribed in PaymentsConfig.ready(). They run inside the
caller's transaction, stay cheap, and leave everything external (Stripe) to after commit."""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction

from common.errors import ConflictError

logger = logging.getLogger(__name__)


def charge_on_finalize(event) -> None:
    """`invoice.finalized`: a charge_automatically invoice with an amount due gets an attempt now
    and is charged after commit (Celery). Without a default method the attempt is recorded as
    failed (`no_payment_method`) so dunning sees it."""
    inputs = event.inputs or {}
    try:
        due = Decimal(str(inputs.get("amount_due", "0")))
    except InvalidOperation:
        return
    if inputs.get("status") != "finalized" or due <= 0:
        return
    from customers.models import CollectionMethod
    from invoicing.models import Invoice
    from payments.services import RULE_AUTO_CHARGE, _attempt_create_locked

    invoice = Invoice.objects.select_related("customer").get(pk=event.object_id)
    if invoice.customer.collection_method != CollectionMethod.CHARGE_AUTOMATICALLY:
        return
    try:
        with transaction.atomic():
            attempt = _attempt_create_locked(invoice=invoice, payment_method=None, actor="rule:charge_automatically",
                                             rule=RULE_AUTO_CHARGE, require_method=False)
    except (ConflictError, IntegrityError):
        logger.info("invoice %s: a charge is already in flight; not charging again", invoice.pk)
        return
    if attempt.status == "pending":
        attempt_id = attempt.pk
        transaction.on_commit(lambda: _enqueue_charge(attempt_id))


def _enqueue_charge(attempt_id: int) -> None:
    from payments.tasks import payment_attempt_execute_task

    try:
        payment_attempt_execute_task.delay(attempt_id)
    except Exception:  # noqa: BLE001 - the attempt stays pending; "pay now" or the sweep picks it up
        logger.exception("could not enqueue payment attempt %s", attempt_id)


def record_manual_payment(event) -> None:
    from payments.services import payment_from_invoice_event

    payment_from_invoice_event(event)


def refund_on_credit_note(event) -> None:
    from invoicing.models import CreditNote
    from payments.services import refunds_for_credit_note

    note = CreditNote.objects.get(pk=event.object_id)
    refunds_for_credit_note(credit_note=note, actor=event.actor_user or event.actor)
