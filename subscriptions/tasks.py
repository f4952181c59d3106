"""Thin Celery tasks for the beat schedule (hourly is fine: both are idempotent sweeps that use each
customer's local date)."""

from celery import shared_task

from subscriptions.services import subscription_activate_trials, subscription_apply_due_changes


@shared_task(name="subscriptions.activate_trials")
def activate_trials() -> int:
    """Trials that have ended become active."""
    return subscription_activate_trials()


@shared_task(name="subscriptions.apply_due_changes")
def apply_due_changes() -> int:
    """Scheduled changes (downgrades, seat decreases, cancellations at period end) that have come due."""
    return subscription_apply_due_changes()
