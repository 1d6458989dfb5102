"""Posts on the real stack, for the suites that run the engine (tests/engine, tests/prodserver): a post seeded
and its workflow started, what a test waits for while it runs, and the sandbox's verdict on it."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from chronogram.contracts import ScheduledPostResult
from chronogram.enums import PostType
from chronogram.scheduling import start_post_workflow
from sandbox.admin_client import SandboxAccount, SandboxAdmin
from tests.support.factories import PostSeed, Seeder


async def start_seeded(
    client: Client, seeder: Seeder, account: tuple[SandboxAccount, int], seed: PostSeed
) -> tuple[int, WorkflowHandle[Any, ScheduledPostResult]]:
    """The post ``seed`` describes, stored for ``account`` (as ``ig_account`` gives it), and its workflow
    started: the post's id and the workflow's handle."""
    post_id = await asyncio.to_thread(seeder.post, account[1], seed)
    return post_id, await start_stored(client, account, post_id, seed.post_type, seed.publish_at)


async def start_stored(
    client: Client,
    account: tuple[SandboxAccount, int],
    post_id: int,
    post_type: PostType,
    publish_at: datetime,
) -> WorkflowHandle[Any, ScheduledPostResult]:
    """The workflow of a post already stored for ``account``, due at ``publish_at`` (its stored time)."""
    ig, account_id = account
    return await start_post_workflow(
        client,
        post_id=post_id,
        account_id=account_id,
        username=ig.username,
        post_type=post_type,
        publish_at=publish_at,
    )


async def wait_for_started_activity(
    handle: WorkflowHandle[Any, Any], activity_type: str, within: float = 30
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        description = await handle.describe()
        for pending in description.raw_description.pending_activities:
            if (
                pending.activity_type.name == activity_type
                and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
            ):
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"activity {activity_type} never started")


async def wait_for_timer(handle: WorkflowHandle[Any, Any], within: float = 30) -> None:
    """The workflow is asleep: its history holds a started timer (a post prepared and waiting for its time)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
                return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{handle.id} never started a timer")


async def wait_for_task_after_timer(handle: WorkflowHandle[Any, Any], within: float = 60) -> None:
    """A timer of the workflow fired and the workflow task that follows it has started (its local activities,
    if any, run in it)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        fired = False
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
                fired = True
            elif fired and event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{handle.id}: no workflow task started after a timer fired")


async def wait_for_graph_call(
    admin: SandboxAdmin, ig: SandboxAccount, endpoint: str, within: float = 30
) -> None:
    """The activity being started is not enough: the publish activity holds its call until publish_at, and a
    worker killed before the call reaches Instagram tests a different (slower, reconciling) path."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await admin.calls(endpoint=endpoint, ig_user_id=ig.ig_user_id):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"Instagram never received {endpoint}")


async def assert_published_exactly_once(admin: SandboxAdmin, ig: SandboxAccount) -> None:
    published = await admin.published(ig.ig_user_id)
    assert len(published) == 1, f"{len(published)} media published"
    assert len(published[0]["comments"]) == 1, f"{len(published[0]['comments'])} first comments"


async def wait_for_status(
    handle: WorkflowHandle[Any, Any], status: WorkflowExecutionStatus, within: float = 60
) -> None:
    """The workflow reached ``status`` (one still finishing its last tasks gets ``within`` seconds)."""
    deadline = time.monotonic() + within
    while (seen := (await handle.describe()).status) is not status:
        if time.monotonic() >= deadline:
            raise AssertionError(f"{handle.id} is {seen and seen.name}, not {status.name}, after {within} s")
        await asyncio.sleep(0.1)
