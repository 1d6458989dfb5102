"""Posts due at the same second begin publishing ahead of it and hold their media_publish calls until it: a cancel
sent one second before the publish time, in the middle of such a burst, stops that post's held call (the post ends
cancelled, with one event), and the other posts publish on time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select
from temporalio.client import Client, WorkflowExecutionStatus

from chronogram.contracts import (
    CancelRequest,
    PublishNowRequest,
    PublishStep,
    SignalOutcomeQuery,
    SignalVerdict,
    post_metrics_workflow_id,
)
from chronogram.db import make_engine
from chronogram.enums import EventKind, PostStatus, PostType
from chronogram.models import Post, PostEvent
from chronogram.settings import Settings
from sandbox.admin_client import SandboxAdmin
from tests.engine.conftest import start_seeded
from tests.support.factories import PostSeed, Seeder
from tests.support.media import Upload
from tests.support.publishing import start_stored
from workflows import ScheduledPostWorkflow

pytestmark = pytest.mark.usefixtures("in_process_worker")

BURST = 30
# Enough for the burst's workflows to start and prepare (rendered, containers FINISHED) on a busy two-core machine.
LEAD = timedelta(seconds=30)


async def test_a_cancel_one_second_before_publish_at_stops_that_post_of_a_burst(
    engine_client: Client, seeder: Seeder, ig_account, sandbox_admin: SandboxAdmin, engine_settings: Settings
) -> None:
    image = Upload.jpeg(1080, 1350)
    # Seeded first (slow on a busy machine), then given its time: the burst's workflows get the whole lead.
    seeds = [
        PostSeed(
            PostType.IMAGE, [image], datetime.now(UTC) + timedelta(hours=1), caption=f"burst post #{index}"
        )
        for index in range(BURST)
    ]
    post_ids = [await asyncio.to_thread(seeder.post, ig_account[1], seed) for seed in seeds]
    publish_at = datetime.now(UTC).replace(microsecond=0) + LEAD
    await asyncio.to_thread(seeder.move, post_ids, publish_at)
    handles = await asyncio.gather(
        *(
            start_stored(engine_client, ig_account, post_id, PostType.IMAGE, publish_at)
            for post_id in post_ids
        )
    )
    started = list(zip(post_ids, handles, strict=True))
    target_id, target = started[BURST // 2]

    await asyncio.sleep((publish_at - timedelta(seconds=1) - datetime.now(UTC)).total_seconds())
    state = await target.query(ScheduledPostWorkflow.state)
    await target.signal(
        ScheduledPostWorkflow.cancel, CancelRequest(reason="not this one after all", request_id="late-cancel")
    )
    sent_at = datetime.now(UTC)
    # The post was publishing, its call held: the cancel is the hold's to honour.
    assert (state.status, state.step) == (PostStatus.PUBLISHING, PublishStep.HOLDING)
    assert publish_at - sent_at >= timedelta(seconds=0.7), "the cancel was sent too late to mean anything"

    results = await asyncio.wait_for(asyncio.gather(*(handle.result() for _, handle in started)), timeout=120)
    by_post = {post_id: result.status for (post_id, _), result in zip(started, results, strict=True)}
    assert by_post.pop(target_id) is PostStatus.CANCELLED
    assert set(by_post.values()) == {PostStatus.PUBLISHED}
    outcome = await target.query(ScheduledPostWorkflow.signal_outcome, SignalOutcomeQuery("late-cancel"))
    assert outcome.verdict is SignalVerdict.ACCEPTED

    # Instagram's ground truth: every other post once, on time; the cancelled one never.
    published = await sandbox_admin.published(ig_account[0].ig_user_id)
    captions = sorted(media["caption"] for media in published)
    assert captions == sorted(f"burst post #{index}" for index in range(BURST) if index != BURST // 2)
    lags = [
        (datetime.fromisoformat(media["published_at"]) - publish_at).total_seconds() for media in published
    ]
    assert min(lags) >= 0, "a held call went out before its publish time"
    assert max(lags) < 2.0, f"lags {sorted(lags)}"
    calls = await sandbox_admin.calls(endpoint="media_publish", ig_user_id=ig_account[0].ig_user_id)
    assert len(calls) == BURST - 1

    with Session(make_engine(engine_settings.database_url)) as session:
        post = session.get(Post, target_id)
        assert post is not None and post.status is PostStatus.CANCELLED and post.ig_media_id is None
        transitions = session.exec(
            select(PostEvent.from_status, PostEvent.to_status, PostEvent.detail)
            .where(PostEvent.post_id == target_id, PostEvent.kind == EventKind.TRANSITION)
            .order_by(PostEvent.id)  # type: ignore[arg-type]
        ).all()
    changes = [(before, after) for before, after, _ in transitions if after is not None]
    assert changes == [  # seeded as scheduled, without a creation event
        (PostStatus.SCHEDULED, PostStatus.PUBLISHING),
        (PostStatus.PUBLISHING, PostStatus.CANCELLED),
    ]
    assert (transitions[-1][2] or {}).get("message") == "not this one after all"

    # Each post's insights were started ahead, as it began publishing: the cancelled one's are withdrawn, the
    # others' sleep until their first reading.
    insights = {
        post_id: (
            await engine_client.get_workflow_handle(post_metrics_workflow_id(post_id)).describe()
        ).status
        for post_id in (target_id, started[0][0])
    }
    assert insights == {
        target_id: WorkflowExecutionStatus.TERMINATED,
        started[0][0]: WorkflowExecutionStatus.RUNNING,
    }


async def test_publish_now_during_the_hold_records_when_the_post_went_out(
    engine_client: Client, seeder: Seeder, ig_account, engine_settings: Settings
) -> None:
    """Publish-now reaches a held call: the post goes out at once, and its publish time in the database (what the
    date filters read) is when it went out, not the later time it was held for."""
    publish_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=25)
    post_id, handle = await start_seeded(
        engine_client, seeder, ig_account, PostSeed(PostType.IMAGE, [Upload.jpeg(1080, 1350)], publish_at)
    )
    while (state := await handle.query(ScheduledPostWorkflow.state)).step is not PublishStep.HOLDING:
        assert datetime.now(UTC) < publish_at - timedelta(seconds=3), f"never held: {state}"
        await asyncio.sleep(0.1)
    await handle.signal(ScheduledPostWorkflow.publish_now, PublishNowRequest(request_id="now"))
    sent_at = datetime.now(UTC)
    assert (await asyncio.wait_for(handle.result(), timeout=60)).status is PostStatus.PUBLISHED

    with Session(make_engine(engine_settings.database_url)) as session:
        post = session.get(Post, post_id)
        assert post is not None and post.published_at is not None
        assert sent_at - timedelta(seconds=1) <= post.publish_at <= post.published_at
        assert post.publish_at < publish_at - timedelta(seconds=1)
