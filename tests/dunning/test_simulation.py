"""bench/dunning_sim.py's replay on a handful of customers, in the test database: both policies
go through the real services end to end and the smart schedule recovers at least as many."""

import pytest

pytestmark = pytest.mark.django_db(transaction=True)  # the charge on finalize runs on commit


def test_simulation_replays_both_schedules():
    from bench.dunning_sim import run

    results = run(8, 14)
    smart, fixed = results["smart"], results["fixed"]
    assert smart["cases"] == fixed["cases"] == 8
    assert 0 < smart["retries"] <= 8 * 4 and 0 < fixed["retries"] <= 8 * 4
    assert smart["recovered"] >= fixed["recovered"]
    from dunning.models import DunningCase

    assert not DunningCase.objects.filter(status__in=["open", "action_required"]).exists()  # all ran to the end
