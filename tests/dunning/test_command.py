"""The command's input and the beat entry."""

import pytest
from django.core.management import CommandError, call_command

from billing_site.celery import app

pytestmark = pytest.mark.django_db


def test_bad_as_of_is_a_command_error():
    with pytest.raises(CommandError, match="RFC 3339"):
        call_command("run_dunning", as_of="next tuesday")


def test_beat_runs_the_sweep_every_15_minutes():
    from dunning.tasks import run_dunning_task

    entry = app.conf.beat_schedule["dunning-run"]
    assert entry["task"] == "dunning.tasks.run_dunning" and entry["schedule"].minute == {0, 15, 30, 45}
    assert run_dunning_task.apply().get() == {}
