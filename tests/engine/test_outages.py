"""Outages of the Graph API delay posts, never fail them (issue 12): on the real stack, with the sandbox's outage
switch failing every call of one account (HTTP 500, code 2) for a while, then recovering by itself.

The outages last OUTAGE_SECONDS: 50 s by default, which outlasts a call's first retries (about 30 s) so the post
really goes through its delay, with the same logic as a long outage; CHRONOGRAM_TEST_LONG_OUTAGES=1 runs the
5-minute outages of the issue instead (about 12 minutes more)."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, select
from temporalio.client import Client

from chronogram.contracts import DELAYED_SINCE, ErrorType, PublishStep, post_workflow_id
from chronogram.enums import PostStatus, PostType
from chronogram.models import PostEvent
from sandbox.admin_client import SandboxAccount, SandboxAdmin
from tests.engine.conftest import start_seeded
from tests.engine.test_real_stack import only_published
from tests.support.factories import PostSeed, Seeder
from tests.support.media import Upload
from workflows import ScheduledPostWorkflow

pytestmark = pytest.mark.usefixtures("in_process_worker")

OUTAGE_SECONDS = 300.0 if os.environ.get("CHRONOGRAM_TEST_LONG_OUTAGES") == "1" else 50.0
# Delayed calls are retried 15 s apart at most; then the publish itself, the permalink and the comment.
RECOVERED_WITHIN = timedelta(seconds=30)


def _delay_events(seeder: Seeder, post_id: int) -> list[str | None]:
    with Session(seeder.engine) as session:
        rows = session.exec(select(PostEvent).where(PostEvent.post_id == post_id)).all()
    return [
        row.error_code
        for row in rows
        if row.error_code in (ErrorType.PUBLISH_DELAYED, ErrorType.PUBLISH_RESUMED)
    ]


async def _wait_for_step(client: Client, post_id: int, step: PublishStep, within: float) -> None:
    handle = client.get_workflow_handle(post_workflow_id(post_id))
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        state = await handle.query(ScheduledPostWorkflow.state)
        if state.step is step:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"post {post_id} never reached step {step.value!r}")


async def _check_delayed(client: Client, post_id: int) -> None:
    """While the outage lasts: the step says why and since when, and the search attribute is set."""
    handle = client.get_workflow_handle(post_workflow_id(post_id))
    state = await handle.query(ScheduledPostWorkflow.state)
    assert state.delay is not None and state.delay.describe().startswith(
        "delayed: Instagram unavailable since"
    )
    assert "GraphTransientError" in state.delay.last_error
    description = await handle.describe()
    assert description.typed_search_attributes.get(DELAYED_SINCE) == state.delay.since


async def _published_once_after(
    client: Client,
    seeder: Seeder,
    admin: SandboxAdmin,
    account: tuple[SandboxAccount, int],
    post_id: int,
    handle: Any,
    outage: dict[str, Any],
) -> None:
    result = await asyncio.wait_for(handle.result(), timeout=OUTAGE_SECONDS + 90)
    assert result.status is PostStatus.PUBLISHED
    published = await only_published(admin, account)
    assert len(published["comments"]) == 1
    recovered = datetime.fromisoformat(outage["ends_at"])
    lag = datetime.fromisoformat(published["published_at"]) - recovered
    assert timedelta(0) <= lag <= RECOVERED_WITHIN, f"published {lag.total_seconds():.1f} s after recovery"
    assert _delay_events(seeder, post_id) == [ErrorType.PUBLISH_DELAYED, ErrorType.PUBLISH_RESUMED]
    description = await client.get_workflow_handle(post_workflow_id(post_id)).describe()
    assert description.typed_search_attributes.get(DELAYED_SINCE) is None


async def test_an_outage_during_preparation_ends_in_one_publish_right_after_recovery(
    engine_client: Client, seeder: Seeder, sandbox_admin: SandboxAdmin, ig_account: tuple[SandboxAccount, int]
) -> None:
    outage = await sandbox_admin.start_outage(seconds=OUTAGE_SECONDS, ig_user_id=ig_account[0].ig_user_id)
    seed = PostSeed(PostType.IMAGE, [Upload.jpeg(1080, 1080)], datetime.now(UTC) + timedelta(seconds=20))
    post_id, handle = await start_seeded(engine_client, seeder, ig_account, seed)
    await _wait_for_step(engine_client, post_id, PublishStep.DELAYED, within=OUTAGE_SECONDS)
    await _check_delayed(engine_client, post_id)
    await _published_once_after(engine_client, seeder, sandbox_admin, ig_account, post_id, handle, outage)


async def test_an_outage_at_publish_time_ends_in_one_publish_right_after_recovery(
    engine_client: Client, seeder: Seeder, sandbox_admin: SandboxAdmin, ig_account: tuple[SandboxAccount, int]
) -> None:
    # Prepared in a few seconds, it then waits (step WAITING) until publishing begins, the hold's 10 s lead ahead.
    seed = PostSeed(PostType.IMAGE, [Upload.jpeg(1080, 1080)], datetime.now(UTC) + timedelta(seconds=25))
    post_id, handle = await start_seeded(engine_client, seeder, ig_account, seed)
    await _wait_for_step(engine_client, post_id, PublishStep.WAITING, within=15)
    outage = await sandbox_admin.start_outage(seconds=OUTAGE_SECONDS, ig_user_id=ig_account[0].ig_user_id)
    await _wait_for_step(engine_client, post_id, PublishStep.DELAYED, within=OUTAGE_SECONDS)
    await _check_delayed(engine_client, post_id)
    assert (
        await engine_client.get_workflow_handle(post_workflow_id(post_id)).query(ScheduledPostWorkflow.state)
    ).status is PostStatus.PUBLISHING
    await _published_once_after(engine_client, seeder, sandbox_admin, ig_account, post_id, handle, outage)


@pytest.mark.parametrize(
    "fault",
    [
        {"action": "error", "code": 2, "http_status": 500, "count": 3},
        {"action": "error", "code": 4, "http_status": 400, "count": 2, "retry_after_seconds": 2},
        {"action": "drop", "count": 2},
        {"action": "commit_then_drop", "count": 1},
    ],
    ids=["500", "throttled", "dropped", "commented-then-dropped"],
)
async def test_faults_on_comments_create_still_give_exactly_one_comment(
    engine_client: Client,
    seeder: Seeder,
    sandbox_admin: SandboxAdmin,
    ig_account: tuple[SandboxAccount, int],
    fault: dict[str, Any],
) -> None:
    spec = dict(fault)
    await sandbox_admin.add_fault(
        spec.pop("action"), endpoint="comments_create", ig_user_id=ig_account[0].ig_user_id, **spec
    )
    seed = PostSeed(PostType.IMAGE, [Upload.jpeg(1080, 1080)], datetime.now(UTC) + timedelta(seconds=4))
    post_id, handle = await start_seeded(engine_client, seeder, ig_account, seed)
    result = await asyncio.wait_for(handle.result(), timeout=90)
    assert result.status is PostStatus.PUBLISHED
    published = await only_published(sandbox_admin, ig_account)
    assert [c["text"] for c in published["comments"]] == [seed.first_comment]
    with Session(seeder.engine) as session:
        codes = [
            e.error_code for e in session.exec(select(PostEvent).where(PostEvent.post_id == post_id)).all()
        ]
    assert ErrorType.FIRST_COMMENT_REFUSED not in codes
