from celery import shared_task


@shared_task(name="analytics.rebuild_mrr_ledger")
def rebuild_mrr_ledger() -> int:
    """Nightly: recompute the MRR movement ledger from history (covers data written without domain
    events, such as imports and corrections). Idempotent: unchanged rows are left alone."""
    from analytics.mrr import ledger_rebuild

    return ledger_rebuild()
