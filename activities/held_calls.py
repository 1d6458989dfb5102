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
from datetime import UTC, datetime


class HeldCalls:
    def __init__(self) -> None:
        self._open: dict[datetime, int] = {}
        self._answered: dict[datetime, asyncio.Event] = {}

    @contextmanager
    def call(self, instant: datetime) -> Iterator[None]:
        """Around one held call, from its hold until its answer (or its failure, or its cancellation)."""
        self._open[instant] = self._open.get(instant, 0) + 1
        self._answered.setdefault(instant, asyncio.Event())
        try:
            yield
        finally:
            self._open[instant] -= 1
            if not self._open[instant]:
                del self._open[instant]
                self._answered.pop(instant).set()

    def open_calls(self, instant: datetime) -> int:
        return self._open.get(instant, 0)

    async def all_answered(self, instant: datetime, *, at_most_until: datetime) -> None:
        """Until every call held for ``instant`` has its answer, or ``at_most_until``."""
        answered = self._answered.get(instant)
        left = (at_most_until - datetime.now(UTC)).total_seconds()
        if answered is None or left <= 0:
            return
        try:
            await asyncio.wait_for(answered.wait(), left)
        except TimeoutError:
            pass
