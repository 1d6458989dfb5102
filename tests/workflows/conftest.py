"""The time-skipping workflow tests' fixture: a post started on a fresh task queue with a worker running the fakes
of a script (tests/support/fakes.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest_asyncio
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from chronogram.contracts import ScheduledPostResult
from chronogram.scheduling import start_post_workflow
from tests.support.fakes import FakeWorld, Script
from workflows import ScheduledPostWorkflow
from workflows.scheduled_post import _HOLD_MIN_LEAD

TOLERANCE = timedelta(seconds=5)
# The workflow begins publishing this much before publish_at (the fakes count no other post due with it) and the
# publish activity holds media_publish until publish_at.
WAKE_EARLY = _HOLD_MIN_LEAD


@dataclass
class Running:
    env: WorkflowEnvironment
    world: FakeWorld
    handle: WorkflowHandle[ScheduledPostWorkflow, ScheduledPostResult]
    publish_at: datetime

    def begin_time(self) -> datetime:
        return self.world.called("begin_publishing")[0].at

    def assert_published_on_time(self, publish_at: datetime) -> None:
        """Woke just before ``publish_at``, and told the publish activity to hold the call until then."""
        assert publish_at - WAKE_EARLY <= self.begin_time() <= publish_at + TOLERANCE
        first_publish = self.world.called("publish")[0]
        assert first_publish.arg.not_before == publish_at
        assert publish_at - WAKE_EARLY <= first_publish.at <= publish_at + TOLERANCE


@pytest_asyncio.fixture
async def schedule(
    time_skipping_env: WorkflowEnvironment,
) -> AsyncIterator[Callable[..., Awaitable[Running]]]:
    """Start a post ``delay`` ahead on a fresh task queue with a worker running the fakes of ``script``."""
    workers: list[Worker] = []

    async def start(delay: timedelta, script: Script | None = None) -> Running:
        world = FakeWorld(script)
        world.clock = time_skipping_env.get_current_time
        task_queue = f"posts-{uuid.uuid4()}"
        worker = Worker(
            time_skipping_env.client,
            task_queue=task_queue,
            workflows=[ScheduledPostWorkflow],
            activities=world.activities(),
        )
        await worker.__aenter__()
        workers.append(worker)
        world.base = await time_skipping_env.get_current_time()
        publish_at = world.base + delay
        handle = await start_post_workflow(
            time_skipping_env.client,
            post_id=int(uuid.uuid4().int % 1_000_000_000),
            account_id=1,
            username="shop",
            post_type=world.script.post_type,
            publish_at=publish_at,
            task_queue=task_queue,
        )
        return Running(time_skipping_env, world, handle, publish_at)

    yield start
    for worker in workers:
        await worker.__aexit__(None, None, None)
