"""Thin Celery tasks: the beat sweep (every 15 minutes) calls the service with the real time."""

from __future__ import annotations

from celery import shared_task

from dunning.services import dunning_sweep


@shared_task(name="dunning.tasks.run_dunning", time_limit=900, soft_time_limit=840)
def run_dunning_task() -> dict:
    return dunning_sweep()
