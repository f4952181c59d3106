"""Domain-event handlers (common.hooks), subscribed in PaymentsConfig.ready(). They run inside the
caller's transaction, stay cheap, and leave everything external (Stripe) to after commit."""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction

from common.errors import ConflictError
from customers.models import CollectionMethod
from invoicing.models import CreditNote, Invoice
from payments.models import AttemptStatus
from payments.services import (RULE_AUTO_CHARGE, _attempt_create_locked, payment_from_invoice_event,
                               refunds_for_credit_note)
from payments.tasks import payment_attempt_execute_task

logger = logging.getLogger(__name__)


def charge_on_finalize(events) -> None:
    """`invoice.finalized` (a batch at a time): each charge_automatically invoice with an amount
    due gets an attempt now and is charged after commit (Celery). Without a default method the
    attempt is recorded as failed (`no_payment_method`) so dunning sees it. One query for the
    whole batch picks the invoices to charge, so a finalize batch of send_invoice customers costs
    nothing more."""
    ids = []
    for event in events:
        inputs = event.inputs or {}
        try:
            due = Decimal(str(inputs.get("amount_due", "0")))
        except InvalidOperation:
            continue
        if inputs.get("status") == "finalized" and due > 0:
            ids.append(event.object_id)
    if not ids:
        return

    invoices = (Invoice.objects.select_related("customer")
                .filter(pk__in=ids, customer__collection_method=CollectionMethod.CHARGE_AUTOMATICALLY).order_by("pk"))
    for invoice in invoices:
        try:
            with transaction.atomic():
                attempt = _attempt_create_locked(invoice=invoice, payment_method=None, actor="rule:charge_automatically",
                                                 rule=RULE_AUTO_CHARGE, require_method=False)
        except (ConflictError, IntegrityError):
            logger.info("invoice %s: a charge is already in flight; not charging again", invoice.pk)
            continue
        if attempt.status == AttemptStatus.PENDING:
            attempt_id = attempt.pk
            transaction.on_commit(lambda attempt_id=attempt_id: _enqueue_charge(attempt_id))


def _enqueue_charge(attempt_id: int) -> None:
    try:
        payment_attempt_execute_task.delay(attempt_id)
    except Exception:  # noqa: BLE001 - the attempt stays pending; "pay now" or the sweep picks it up
        logger.exception("could not enqueue payment attempt %s", attempt_id)


def record_manual_payment(event) -> None:
    payment_from_invoice_event(event)


def refund_on_credit_note(event) -> None:
    note = CreditNote.objects.get(pk=event.object_id)
    refunds_for_credit_note(credit_note=note, actor=event.actor_user or event.actor)
