"""Small waits shared by the sandbox-backed tests."""

from __future__ import annotations

import asyncio
import time

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
