"""One race helper for the concurrency tests: run N callables in N threads, each with its own database
connection, all released together by a barrier, and collect what each returned or raised.

    raced = race(lambda: service(...), lambda: service(...))
    assert raced.errors == []

Tests that use it need real transactions (`pytest.mark.django_db(transaction=True)`): each thread
opens its own connection and closes it when done."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

from django.db import connection


@dataclass
class RaceOutcome:
    results: list  # per callable, in call order: what it returned (None when it raised)
    raised: list  # per callable, in call order: the exception it raised (None when it returned)
    errors: list = field(default_factory=list)  # the exceptions raised, in the order they happened

    @property
    def returned(self) -> list:
        """The return values of the callables that did not raise, in call order."""
        return [r for r, exc in zip(self.results, self.raised) if exc is None]

    @property
    def outcomes(self) -> list:
        """Per callable, in call order: what it returned, or the exception it raised."""
        return [exc if exc is not None else r for r, exc in zip(self.results, self.raised)]


def race(*calls: Callable, join_timeout: float = 120, barrier_timeout: float | None = None) -> RaceOutcome:
    """Start every callable in its own thread at the same moment (barrier); wait for all of them."""
    barrier = threading.Barrier(len(calls))
    outcome = RaceOutcome(results=[None] * len(calls), raised=[None] * len(calls))
    lock = threading.Lock()

    def run(index: int, call: Callable) -> None:
        try:
            barrier.wait(timeout=barrier_timeout)
            outcome.results[index] = call()
        except Exception as exc:  # noqa: BLE001 — reported to the test
            with lock:
                outcome.raised[index] = exc
                outcome.errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(join_timeout)
    return outcome
