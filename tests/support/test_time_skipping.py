"""The shared time-skipping server outlives a test that fails halfway: what it left open is terminated and the
next test gets a server whose clock still skips (tests/support/time_skipping.py)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from temporalio import workflow
from temporalio.client import WorkflowHandle
from temporalio.worker import Worker

from tests.support.time_skipping import TimeSkippingServers


@workflow.defn(sandboxed=False)
class CallsAnActivityNoWorkerRuns:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity("served_by_no_worker", start_to_close_timeout=timedelta(hours=1))


async def _until_its_activity_is_scheduled(handle: WorkflowHandle[CallsAnActivityNoWorkerRuns, None]) -> None:
    for _ in range(200):
        if (await handle.describe()).raw_description.pending_activities:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the workflow never scheduled its activity")


async def test_a_workflow_left_holding_the_clock_is_terminated_and_the_next_test_gets_a_clock_that_skips() -> (
    None
):
    servers = TimeSkippingServers()
    try:
        env = await servers.take()
        task_queue = f"left-open-{uuid.uuid4()}"
        # The worker runs the workflow but not its activity, then stops: the activity stays scheduled, the way a
        # test failing halfway leaves its posts.
        async with Worker(env.client, task_queue=task_queue, workflows=[CallsAnActivityNoWorkerRuns]):
            handle = await env.client.start_workflow(
                CallsAnActivityNoWorkerRuns.run, id=f"left-open-{uuid.uuid4()}", task_queue=task_queue
            )
            await _until_its_activity_is_scheduled(handle)

        assert await servers.give_back() == [handle.id]

        fresh = await servers.take()
        assert fresh is not env and servers.started == 2
        before = await fresh.get_current_time()
        await asyncio.wait_for(fresh.sleep(timedelta(days=3)), timeout=60)
        assert await fresh.get_current_time() - before >= timedelta(days=3)

        assert await servers.give_back() == []
        assert await servers.take() is fresh  # a clean test keeps the server
    finally:
        await servers.close()
