from celery import shared_task

from usage.partitioning import usage_partitions_ensure_ahead


@shared_task(name="usage.ensure_partitions_ahead")
def ensure_partitions_ahead(months_ahead: int = 3) -> list[str]:
    """Daily: keep monthly event partitions created ahead (ingestion also creates them on demand)."""
    return usage_partitions_ensure_ahead(months_back=0, months_ahead=months_ahead)
