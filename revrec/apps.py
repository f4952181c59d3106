import logging

from django.apps import AppConfig

# Source documents whose posting should not wait for the hourly sweep.
PROMPT_ACTIONS = ("invoice.finalized", "invoice.voided", "invoice.marked_uncollectible", "invoice.payment_recorded",
                  "credit_note.issued", "credit_note.voided")


def _enqueue_sync() -> None:
    """After the source document's transaction commits: one `revrec.sync` task. Never raises into
    the caller (its change is committed); the hourly beat sweep catches up on any failure."""
    try:
        from revrec.tasks import revrec_sync_task

        revrec_sync_task.delay()
    except Exception:  # noqa: BLE001
        logging.getLogger(__name__).exception("could not run/enqueue the revenue sync")


def post_promptly(events) -> None:
    from django.db import transaction

    transaction.on_commit(_enqueue_sync)


class RevrecConfig(AppConfig):
    name = "revrec"

    def ready(self) -> None:
        from common import hooks
        from revrec import tasks  # noqa: F401  (register the tasks by name)

        for action in PROMPT_ACTIONS:
            hooks.subscribe(action, post_promptly, many=True)
