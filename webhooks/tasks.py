from celery import shared_task

from webhooks.delivery import webhooks_deliver_due


@shared_task(name="webhooks.deliver", ignore_result=True, soft_time_limit=240, time_limit=300)
def deliver_webhooks() -> int:
    """One sweep (beat: every minute; also enqueued after each commit that wrote outbox rows). Bounded in
    time; what is left waits for the next sweep. Safe to run several at once (SKIP LOCKED claims)."""
    return webhooks_deliver_due(max_seconds=50).attempted
