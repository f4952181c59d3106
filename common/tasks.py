from celery import shared_task

from common.idempotency import idempotency_keys_purge


@shared_task(name="common.purge_idempotency_keys")
def purge_idempotency_keys() -> int:
    return idempotency_keys_purge()
