"""PostMetricsWorkflow on the time-skipping server, with its real activity reading a real Graph API sandbox and
writing a real SQLite database: the three readings (+1 h, +24 h, +7 d) land as a time series, each taken when its
timer fires; a reading Instagram refuses is stored with its error and never touches the post's status."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.metrics import PostMetricsActivities
from chronogram.contracts import (
    PostMetricsInput,
    PostMetricsResult,
    post_metrics_workflow_id,
)
from chronogram.crypto import TokenCipher
from chronogram.enums import MetricsCheckpoint, PostStatus, PostType
from chronogram.instagram import GraphClient
from chronogram.instagram.models import ImageSpec
from chronogram.models import Post, PostMetrics
from chronogram.temporal import DATA_CONVERTER
from sandbox.admin_client import SandboxAccount, SandboxAdmin
from tests.support.factories import add_account, add_user, id_of
from tests.support.graph_sandbox import sandbox_server
from tests.support.media_server import MediaServer, StandardMedia, publish_standard_media
from workflows import PostMetricsWorkflow


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with sandbox_server(image=0, video=0, carousel=0) as url:
        yield url


@pytest.fixture(scope="module")
def standard_media() -> Iterator[StandardMedia]:
    server = MediaServer()
    server.start()
    yield publish_standard_media(server)
    server.stop()


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


@dataclass
class Published:
    post_id: int
    media_id: str
    account: SandboxAccount


async def publish(
    graph: GraphClient, sandbox: SandboxAdmin, media: StandardMedia, engine: Engine, cipher: TokenCipher
) -> Published:
    """An image really published on the sandbox, and its post's row (published, with that media id)."""
    account = await sandbox.create_account(f"shop_{uuid.uuid4().hex[:8]}")
    await sandbox.set_audience(account.ig_user_id, lag_seconds=0, followers=10000)
    container = await graph.create_container(
        ig_user_id=account.ig_user_id,
        spec=ImageSpec(image_url=media.square),
        access_token=account.access_token,
    )
    published = await graph.publish(
        ig_user_id=account.ig_user_id, container_id=container.id, access_token=account.access_token
    )
    now = datetime.now(UTC)
    with Session(engine) as session:
        owner = add_user(session)
        row = add_account(session, owner, cipher, ig_user_id=account.ig_user_id, token=account.access_token)
        post = Post(
            owner_id=id_of(owner),
            account_id=id_of(row),
            type=PostType.IMAGE,
            publish_at=now,
            status=PostStatus.PUBLISHED,
            published_at=now,
            ig_media_id=published.id,
        )
        session.add(post)
        session.commit()
        return Published(id_of(post), published.id, account)


def readings(engine: Engine, post_id: int) -> dict[MetricsCheckpoint, PostMetrics]:
    with Session(engine) as session:
        rows = session.exec(select(PostMetrics).where(PostMetrics.post_id == post_id)).all()
        return {row.checkpoint: row for row in rows}


async def wait_for_reading(engine: Engine, post_id: int, checkpoint: MetricsCheckpoint) -> PostMetrics:
    for _ in range(400):
        found = await asyncio.to_thread(readings, engine, post_id)
        if checkpoint in found:
            return found[checkpoint]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no reading at +{checkpoint.value}")


async def run_metrics(
    env: WorkflowEnvironment,
    engine: Engine,
    sandbox: SandboxAdmin,
    post: Published,
) -> tuple[WorkflowHandle[PostMetricsWorkflow, PostMetricsResult], list[PostMetrics]]:
    """Start the workflow at the post's publish time, then move the sandbox's clock and the server's time
    together: each reading is taken at its checkpoint on both clocks."""
    start = await env.get_current_time()
    handle = await env.client.start_workflow(
        PostMetricsWorkflow.run,
        PostMetricsInput(post.post_id, start),
        id=post_metrics_workflow_id(post.post_id),
        task_queue=TASK_QUEUE,
    )
    taken: list[PostMetrics] = []
    elapsed = timedelta(0)
    for checkpoint in MetricsCheckpoint:
        step = timedelta(seconds=checkpoint.seconds) - elapsed
        await sandbox.advance_clock(step.total_seconds())
        await env.sleep(step + timedelta(seconds=1))
        elapsed += step
        taken.append(await wait_for_reading(engine, post.post_id, checkpoint))
        assert await env.get_current_time() - start < elapsed + timedelta(minutes=1)
    return handle, taken


TASK_QUEUE = f"post-metrics-{uuid.uuid4()}"
RECORD_TO = Path(__file__).parents[1] / "replay" / "metrics_histories" / "three_readings.json"


@pytest_asyncio.fixture
async def world(
    time_skipping_env: WorkflowEnvironment,
    sqlite_engine: Engine,
    cipher: TokenCipher,
    http: httpx.AsyncClient,
    sandbox_url: str,
) -> AsyncIterator[tuple[GraphClient, SandboxAdmin]]:
    graph = GraphClient(http, base_url=sandbox_url, api_version="v25.0", timeout=5.0, publish_timeout=5.0)
    sandbox = SandboxAdmin(http, sandbox_url)
    await sandbox.reset()
    await sandbox.freeze_clock()
    activities = PostMetricsActivities(graph, sqlite_engine, cipher)
    async with Worker(
        time_skipping_env.client,
        task_queue=TASK_QUEUE,
        workflows=[PostMetricsWorkflow],
        activities=[activities.capture_metrics],
    ):
        yield graph, sandbox


async def test_insights_are_read_at_one_hour_one_day_and_one_week(
    time_skipping_env: WorkflowEnvironment,
    sqlite_engine: Engine,
    cipher: TokenCipher,
    world: tuple[GraphClient, SandboxAdmin],
    standard_media: StandardMedia,
) -> None:
    graph, sandbox = world
    post = await publish(graph, sandbox, standard_media, sqlite_engine, cipher)

    handle, taken = await run_metrics(time_skipping_env, sqlite_engine, sandbox, post)

    result = await handle.result()
    assert result.captured == list(MetricsCheckpoint)
    assert result.missed == []
    assert [row.checkpoint for row in taken] == list(MetricsCheckpoint)
    assert all(row.error_code is None for row in taken)
    # A time series: every count grows with the post's age.
    for name in ("reach", "views", "likes", "total_interactions"):
        series = [getattr(row, name) for row in taken]
        assert series[0] < series[1] < series[2], (name, series)
    for row in taken:
        parts = (row.likes, row.comments, row.saved, row.shares)
        assert sum(part or 0 for part in parts) == row.total_interactions
    # Read by the token the activity decrypted: the history never holds it. It replays with the current code, and
    # is the one tests/replay keeps (re-record with CHRONOGRAM_RECORD_METRICS_HISTORY=1).
    history = await handle.fetch_history()
    assert post.account.access_token not in history.to_json()
    await Replayer(workflows=[PostMetricsWorkflow], data_converter=DATA_CONVERTER).replay_workflow(history)
    if os.environ.get("CHRONOGRAM_RECORD_METRICS_HISTORY"):
        RECORD_TO.parent.mkdir(exist_ok=True)
        RECORD_TO.write_text(json.dumps(json.loads(history.to_json()), indent=1, sort_keys=True) + "\n")


async def test_a_refused_reading_is_stored_with_its_error_and_the_next_one_is_taken(
    time_skipping_env: WorkflowEnvironment,
    sqlite_engine: Engine,
    cipher: TokenCipher,
    world: tuple[GraphClient, SandboxAdmin],
    standard_media: StandardMedia,
) -> None:
    graph, sandbox = world
    post = await publish(graph, sandbox, standard_media, sqlite_engine, cipher)
    # Instagram refuses the first reading (a permission error), then answers again.
    await sandbox.add_fault("error", target_id=post.media_id, code=10, count=1)

    handle, taken = await run_metrics(time_skipping_env, sqlite_engine, sandbox, post)

    result = await handle.result()
    assert result.captured == [MetricsCheckpoint.DAY, MetricsCheckpoint.WEEK]
    assert result.missed == [MetricsCheckpoint.HOUR]
    first = taken[0]
    assert first.error_code == "GraphAuthError"
    assert first.total_interactions is None and first.reach is None
    assert post.account.access_token not in (first.error_message or "")
    assert taken[1].error_code is None and taken[1].reach
    with Session(sqlite_engine) as session:
        stored = session.get(Post, post.post_id)
        assert stored is not None and stored.status is PostStatus.PUBLISHED
