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
from devstack.processes import ManagedProcess
from sandbox.admin_client import SandboxAccount, SandboxAdmin
from tests.engine.conftest import engine_env, start_seeded
from tests.support.factories import PostSeed, Seeder
from tests.support.media import Upload
from tests.support.publishing import (
    assert_published_exactly_once,
    wait_for_graph_call,
    wait_for_started_activity,
    wait_for_task_after_timer,
    wait_for_timer,
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


# Each window: the activity to kill the worker in, and the fault that holds it open long enough. The commit_then_*
# faults are the nastiest windows: Instagram did the irreversible thing, the worker dies before recording it. The
# publish reads its new media's permalink after the call: killed there, the post is live and its media id stored.
WINDOWS: dict[str, tuple[str, dict[str, Any]]] = {
    "create_container": ("create_container", {"action": "latency", "endpoint": "media_create", "seconds": 4}),
    "check_container_ready": (
        "check_container_ready",
        {"action": "latency", "endpoint": "container_status", "seconds": 4},
    ),
    "get_publishing_quota": (
        "get_publishing_quota",
        {"action": "latency", "endpoint": "publishing_limit", "seconds": 4},
    ),
    "publish": ("publish", {"action": "commit_then_hang", "endpoint": "media_publish", "seconds": 30}),
    "publish_reading_the_permalink": (
        "publish",
        {"action": "latency", "endpoint": "media_read", "seconds": 4},
    ),
    "post_first_comment": (
        "post_first_comment",
        {"action": "commit_then_hang", "endpoint": "comments_create", "seconds": 30},
    ),
}


@pytest.mark.parametrize("window", list(WINDOWS))
async def test_worker_killed_inside_an_activity(
    window: str,
    workers: Workers,
    engine_client: Client,
    seeder: Seeder,
    ig_account,
    sandbox_admin: SandboxAdmin,
) -> None:
    ig, _ = ig_account
    activity_type, fault = WINDOWS[window]
    await sandbox_admin.add_fault(ig_user_id=ig.ig_user_id, **fault)
    first = workers.start()
    handle = await schedule(engine_client, seeder, ig_account)
    await wait_for_started_activity(handle, activity_type)
    await wait_for_graph_call(sandbox_admin, ig, fault["endpoint"])
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
        # Marking it publishing is a local activity, run by the workflow task that follows the wake-up's timer.
        await wait_for_task_after_timer(handle)
        await asyncio.sleep(1)  # the local activity is waiting for the lock
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


class _OwnServer:
    """A dev server of a test's own, on a port and database file that outlive it, so that the test can stop it and
    start it again (the session's shared server must not be stopped)."""

    def __init__(self, settings: Settings, sink: TextIO, tmp_path_factory: pytest.TempPathFactory) -> None:
        from devstack.processes import free_port

        self._db_file = tmp_path_factory.mktemp("own-server") / "temporal.db"
        self._port = free_port()
        self._sink = sink
        self.settings = settings.model_copy(
            update={"temporal_address": f"127.0.0.1:{self._port}", "temporal_namespace": "default"}
        )

    def start(self) -> ManagedProcess:
        from chronogram.contracts import SEARCH_ATTRIBUTES
        from devstack.services import TemporalDevServer

        return TemporalDevServer.start(
            sink=self._sink, port=self._port, ui_port=None, db_file=self._db_file,
            search_attributes={key.name: key._metadata_type for key in SEARCH_ATTRIBUTES},
        ).process  # fmt: skip


async def _restart_accounts(seeder: Seeder, sandbox_admin: SandboxAdmin, prefix: str, count: int) -> list[
    tuple[SandboxAccount, int]
]:  # fmt: skip
    accounts = []
    for index in range(count):
        account = await sandbox_admin.create_account(f"{prefix}_{index}")
        account_id = await asyncio.to_thread(
            seeder.account,
            ig_user_id=account.ig_user_id,
            username=account.username,
            token=account.access_token,
        )
        accounts.append((account, account_id))
    return accounts


async def test_dev_server_restart_while_posts_sleep(
    engine_settings: Settings,
    seeder: Seeder,
    sandbox_admin: SandboxAdmin,
    server_log: TextIO,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A server with persisted state is stopped while posts sleep and started again after their publish time:
    every post publishes, once."""
    own = _OwnServer(engine_settings, server_log, tmp_path_factory)
    server = own.start()
    pool = Workers(engine_env(own.settings), server_log)
    try:
        client = await connect_when_healthy(own.settings)
        accounts = await _restart_accounts(seeder, sandbox_admin, "restart", 3)
        # Time enough to prepare on a busy machine: the posts must be asleep before the server stops.
        handles = [
            await schedule(client, seeder, account, delay=timedelta(seconds=40)) for account in accounts
        ]
        due_by = datetime.now(UTC) + timedelta(seconds=40)
        pool.start()
        for handle in handles:
            await wait_for_timer(handle, within=35)
        server.stop()
        # The publish time passes while the server is down.
        await asyncio.sleep((due_by - datetime.now(UTC)).total_seconds() + 2)
        server = own.start()
        client = await connect_when_healthy(own.settings)
        for handle in handles:
            restarted = client.get_workflow_handle(handle.id, result_type=ScheduledPostResult)
            result = await asyncio.wait_for(restarted.result(), timeout=90)
            assert result.status is PostStatus.PUBLISHED
        for account, _ in accounts:
            await assert_published_exactly_once(sandbox_admin, account)
    finally:
        pool.stop_all()
        server.stop()


async def test_a_worker_started_while_the_server_is_down_waits_for_it(
    engine_settings: Settings,
    seeder: Seeder,
    sandbox_admin: SandboxAdmin,
    server_log: TextIO,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A worker that cannot reach Temporal at start keeps trying (it used to exit), and publishes once the server
    is up."""
    own = _OwnServer(engine_settings, server_log, tmp_path_factory)
    pool = Workers(engine_env(own.settings), server_log)
    worker = pool.start()
    server: ManagedProcess | None = None
    try:
        await asyncio.sleep(8)  # a few tries, on a server that is not there
        assert worker.is_running(), worker.recent_output()
        assert "unreachable" in worker.recent_output()
        server = own.start()
        client = await connect_when_healthy(own.settings)
        [account] = await _restart_accounts(seeder, sandbox_admin, "late_server", 1)
        handle = await schedule(client, seeder, account, delay=timedelta(seconds=5))
        result = await asyncio.wait_for(handle.result(), timeout=120)
        assert result.status is PostStatus.PUBLISHED
        await assert_published_exactly_once(sandbox_admin, account[0])
    finally:
        pool.stop_all()
        if server is not None:
            server.stop()
