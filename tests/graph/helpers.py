"""Small waits and a manual clock shared by the sandbox-backed tests."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from chronogram.instagram import ContainerStatus, ContainerStatusCode, GraphClient


async def wait_for_status(
    graph: GraphClient,
    container_id: str,
    access_token: str,
    expected: ContainerStatusCode = ContainerStatusCode.FINISHED,
    *,
    within: float = 5.0,
) -> ContainerStatus:
    deadline = time.monotonic() + within
    while True:
        status = await graph.get_container(container_id=container_id, access_token=access_token)
        if status.status_code is expected:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"container {container_id} stayed {status.status_code}, expected {expected}")
        await asyncio.sleep(0.02)


class ManualClock:
    """A circuit breaker's clock that moves only when a test says so."""

    def __init__(self) -> None:
        self.seconds = 1000.0
        self.wall = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.seconds

    def now(self) -> datetime:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.seconds += seconds
        self.wall += timedelta(seconds=seconds)
