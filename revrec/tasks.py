from celery import shared_task

from revrec.close import revrec_close_due
from revrec.postings import revrec_sync


@shared_task(name="revrec.sync")
def revrec_sync_task() -> dict:
    return revrec_sync().as_dict()


@shared_task(name="revrec.close_due")
def revrec_close_due_task() -> list:
    return revrec_close_due(actor="beat")
