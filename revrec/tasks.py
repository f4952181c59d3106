from celery import shared_task


@shared_task(name="revrec.sync")
def revrec_sync_task() -> dict:
    from revrec.postings import revrec_sync

    return revrec_sync().as_dict()


@shared_task(name="revrec.close_due")
def revrec_close_due_task() -> list:
    from revrec.close import revrec_close_due

    return revrec_close_due(actor="beat")
