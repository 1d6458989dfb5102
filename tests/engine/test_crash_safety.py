"""Crash safety on the real stack: a worker killed with SIGKILL inside an activity, the Temporal server stopped while
posts sleep, and sandbox faults on the irreversible calls never lose a post nor publish one twice."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowHandle

from chronogram.contracts import PublishStep, ScheduledPostResult
from chronogram.enums import PostStatus, PostType
from chronogram.settings import Settings
from sandbox.admin_client import SandboxAccount, SandboxAdmin
from tests.engine.conftest import engine_env, start_seeded
from tests.support.factories import PostSeed, Seeder
from tests.support.media import Upload
from tests.support.publishing import (
    assert_published_exactly_once,
    wait_for_graph_call,
    wait_for_started_activity,
)
from tests.support.stack import connect_when_healthy
from tests.support.workers import Workers
from workflows import ScheduledPostWorkflow


@pytest_asyncio.fixture
async def workers(engine_settings: Settings, server_log: TextIO) -> AsyncIterator[Workers]:
    pool = Workers(engine_env(engine_settings), server_log)
    yield pool
    pool.stop_all()


async def schedule(
    client: Client,
    seeder: Seeder,
    account: tuple[SandboxAccount, int],
    delay: timedelta = timedelta(seconds=3),
) -> WorkflowHandle[Any, Any]:
    seed = PostSeed(PostType.IMAGE, [Upload.jpeg(1080, 1080)], datetime.now(UTC) + delay)
    _post_id, handle = await start_seeded(client, seeder, account, seed)
    return handle


# Each activity with the fault that holds it open long enough to kill the worker inside it. The commit_then_*
# faults are the nastiest windows: Instagram did the irreversible thing, the worker dies before recording it.
WINDOWS: dict[str, dict[str, Any]] = {
    "create_container": {"action": "latency", "endpoint": "media_create", "seconds": 4},
    "check_container_ready": {"action": "latency", "endpoint": "container_status", "seconds": 4},
    "get_publishing_quota": {"action": "latency", "endpoint": "publishing_limit", "seconds": 4},
    "publish": {"action": "commit_then_hang", "endpoint": "media_publish", "seconds": 30},
    "fetch_permalink": {"action": "latency", "endpoint": "media_read", "seconds": 4},
    "post_first_comment": {"action": "commit_then_hang", "endpoint": "comments_create", "seconds": 30},
}


@pytest.mark.parametrize("activity_type", list(WINDOWS))
async def test_worker_killed_inside_an_activity(
    activity_type: str,
    workers: Workers,
    engine_client: Client,
    seeder: Seeder,
    ig_account,
    sandbox_admin: SandboxAdmin,
) -> None:
    ig, _ = ig_account
    await sandbox_admin.add_fault(ig_user_id=ig.ig_user_id, **WINDOWS[activity_type])
    first = workers.start()
    handle = await schedule(engine_client, seeder, ig_account)
    await wait_for_started_activity(handle, activity_type)
    await wait_for_graph_call(sandbox_admin, ig, WINDOWS[activity_type]["endpoint"])
    first.kill()
    workers.start()
    result = await asyncio.wait_for(handle.result(), timeout=120)
    assert result.status is PostStatus.PUBLISHED
    await assert_published_exactly_once(sandbox_admin, ig)


async def test_worker_killed_before_media_publish_was_sent_resumes_within_seconds(
    workers: Workers, engine_client: Client, seeder: Seeder, ig_account, sandbox_admin: SandboxAdmin
) -> None:
    """Killed while the publish activity holds its call until publish_at: nothing reached Instagram, so another
    worker publishes as soon as the dead one's heartbeat is missed, without re-reading the container for
    minutes (the "did it go live?" path is for calls really sent)."""
    ig, _ = ig_account
    first = workers.start()
    # Time to prepare, then the call is held for about the hold's 10 s lead: the worker is killed meanwhile.
    handle = await schedule(engine_client, seeder, ig_account, delay=timedelta(seconds=20))
    await wait_for_started_activity(handle, "publish")
    publish_at = (await handle.query(ScheduledPostWorkflow.state)).publish_at
    first.kill()
    assert not await sandbox_admin.calls(endpoint="media_publish", ig_user_id=ig.ig_user_id)
    workers.start()
    result = await asyncio.wait_for(handle.result(), timeout=90)
    assert result.status is PostStatus.PUBLISHED
    await assert_published_exactly_once(sandbox_admin, ig)
    [published] = await sandbox_admin.published(ig.ig_user_id)
    lag = datetime.fromisoformat(published["published_at"]) - publish_at
    # The heartbeat timeout (10 s), a new worker's start, the retry: well under the old two minutes.
    assert lag < timedelta(seconds=30), f"published {lag.total_seconds():.1f} s late"
    history = await handle.fetch_history()
    scheduled = [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]
    assert "reconcile_publish" not in scheduled


async def test_worker_killed_while_marking_the_post_publishing(
    workers: Workers,
    engine_client: Client,
    seeder: Seeder,
    ig_account,
    sandbox_admin: SandboxAdmin,
    engine_settings: Settings,
) -> None:
    """A database activity held open by a lock on the SQLite file (WAL lets reads through, so the media and the
    containers are prepared; the status write at publish time waits), and the worker killed while it waits."""
    ig, _ = ig_account
    first = workers.start()
    # Prepared, it waits in WAITING for about 10 s before publishing begins (the hold's lead): time to take the lock.
    handle = await schedule(engine_client, seeder, ig_account, delay=timedelta(seconds=20))
    while (await handle.query(ScheduledPostWorkflow.state)).step is not PublishStep.WAITING:
        await asyncio.sleep(0.1)
    lock = sqlite3.connect(engine_settings.database_url.removeprefix("sqlite:///"))
    try:
        lock.execute("BEGIN EXCLUSIVE")
        await wait_for_started_activity(handle, "begin_publishing")
        first.kill()
    finally:
        lock.rollback()
        lock.close()
    workers.start()
    result = await asyncio.wait_for(handle.result(), timeout=120)
    assert result.status is PostStatus.PUBLISHED
    await assert_published_exactly_once(sandbox_admin, ig)


PUBLISH_FAULTS: dict[str, dict[str, Any]] = {
    "published_response_lost": {"action": "commit_then_drop"},
    "error_but_published": {"action": "commit_then_error"},
    "html_502": {"action": "html_502"},
    "transient_error": {"action": "error", "code": 2, "http_status": 500, "is_transient": True},
    "throttled": {"action": "error", "code": 4, "http_status": 400, "estimated_time_to_regain_access": 0},
    "connection_drop": {"action": "drop"},
}


@pytest.mark.usefixtures("in_process_worker")
async def test_publish_faults_never_duplicate(
    engine_client: Client, seeder: Seeder, sandbox_admin: SandboxAdmin
) -> None:
    """One post per fault kind, all at once (the unclear ones each re-read the container for 30 s before a second
    publish); the first comment's call commits and loses its answer too."""

    async def one(name: str, fault: dict[str, Any], ig: SandboxAccount, account_id: int) -> None:
        await sandbox_admin.add_fault(ig_user_id=ig.ig_user_id, endpoint="media_publish", **fault)
        await sandbox_admin.add_fault(
            ig_user_id=ig.ig_user_id, endpoint="comments_create", action="commit_then_drop"
        )
        handle = await schedule(engine_client, seeder, (ig, account_id))
        result = await asyncio.wait_for(handle.result(), timeout=240)
        assert result.status is PostStatus.PUBLISHED, name
        await assert_published_exactly_once(sandbox_admin, ig)

    accounts = []
    for name in PUBLISH_FAULTS:
        ig = await sandbox_admin.create_account(f"fault_{name}")
        accounts.append(
            (ig, seeder.account(ig_user_id=ig.ig_user_id, username=ig.username, token=ig.access_token))
        )
    await asyncio.gather(
        *(
            one(name, fault, *account)
            for (name, fault), account in zip(PUBLISH_FAULTS.items(), accounts, strict=True)
        )
    )


async def test_dev_server_restart_while_posts_sleep(
    engine_settings: Settings,
    seeder: Seeder,
    sandbox_admin: SandboxAdmin,
    server_log: TextIO,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A server with persisted state is stopped while posts sleep and started again later: every post publishes,
    once. (Its own server and namespace: the session's shared server must not be stopped.)"""
    from chronogram.contracts import SEARCH_ATTRIBUTES
    from devstack.processes import free_port
    from devstack.services import TemporalDevServer

    db_file = tmp_path_factory.mktemp("restart") / "temporal.db"
    port = free_port()

    def start_server() -> TemporalDevServer:
        return TemporalDevServer.start(
            sink=server_log, port=port, ui_port=None, db_file=db_file,
            search_attributes={key.name: key._metadata_type for key in SEARCH_ATTRIBUTES},
        )  # fmt: skip

    settings = engine_settings.model_copy(
        update={"temporal_address": f"127.0.0.1:{port}", "temporal_namespace": "default"}
    )
    server = start_server()
    pool = Workers(engine_env(settings), server_log)
    try:
        client = await connect_when_healthy(settings)
        accounts = []
        for index in range(3):
            account = await sandbox_admin.create_account(f"restart_{index}")
            account_id = await asyncio.to_thread(
                seeder.account,
                ig_user_id=account.ig_user_id,
                username=account.username,
                token=account.access_token,
            )
            accounts.append((account, account_id))
        handles = [
            await schedule(client, seeder, account, delay=timedelta(seconds=15)) for account in accounts
        ]
        pool.start()
        await asyncio.sleep(3)  # the posts are prepared and sleeping until their publish time
        server.process.stop()
        await asyncio.sleep(15)  # the publish time passes while the server is down
        server = start_server()
        client = await connect_when_healthy(settings)
        for handle in handles:
            restarted = client.get_workflow_handle(handle.id, result_type=ScheduledPostResult)
            result = await asyncio.wait_for(restarted.result(), timeout=90)
            assert result.status is PostStatus.PUBLISHED
        for account, _ in accounts:
            await assert_published_exactly_once(sandbox_admin, account)
    finally:
        pool.stop_all()
        server.process.stop()
