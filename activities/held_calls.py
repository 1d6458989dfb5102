"""The publish calls this worker process holds for each instant, so that a burst's answered calls complete after
its last one is answered, not in the middle of the burst.

Completing a publish activity sets off the post's next workflow task, its permalink and first comment calls and
Temporal's work for all of them. Done while the burst's other calls are still being sent, that work takes the
machine's CPU and the Graph API's attention from them: measured on the benchmark's 1,000-post burst, two thirds of
the posts' comment and permalink calls reached the sandbox before the last media_publish did. So an activity whose
call has its answer (and whose media id is stored) waits, a few seconds at most, until every call held for the same
instant in this process has its own. The post is live meanwhile, and its publish time in the database is when
Instagram answered; only its first comment and its marking as published wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass
class _Instant:
    """The calls held for one instant: how many are open, and the waits for them to be answered, one gate per
    bound. A burst's thousand waiters share a gate (and its one timer): each waiting with a timeout of its own,
    the timeouts of a burst that outlasted its bound cancelled a thousand waits at once, a tenth of the worker's
    time in a profile of the benchmark's burst."""

    open: int = 0
    gates: dict[datetime, tuple[asyncio.Event, asyncio.TimerHandle]] = field(default_factory=dict)

    def release_all(self) -> None:
        for gate, timer in self.gates.values():
            timer.cancel()
            gate.set()
        self.gates.clear()


class HeldCalls:
    def __init__(self) -> None:
        self._instants: dict[datetime, _Instant] = {}

    @contextmanager
    def call(self, instant: datetime) -> Iterator[None]:
        """Around one held call, from its hold until its answer (or its failure, or its cancellation)."""
        held = self._instants.setdefault(instant, _Instant())
        held.open += 1
        try:
            yield
        finally:
            held.open -= 1
            if not held.open:
                del self._instants[instant]
                held.release_all()

    def open_calls(self, instant: datetime) -> int:
        held = self._instants.get(instant)
        return held.open if held is not None else 0

    async def all_answered(self, instant: datetime, *, at_most_until: datetime) -> None:
        """Until every call held for ``instant`` has its answer, or ``at_most_until``."""
        held = self._instants.get(instant)
        left = (at_most_until - datetime.now(UTC)).total_seconds()
        if held is None or left <= 0:
            return
        gate = held.gates.get(at_most_until)
        if gate is None:
            event = asyncio.Event()
            gate = event, asyncio.get_running_loop().call_later(left, event.set)
            held.gates[at_most_until] = gate
        await gate[0].wait()
