"""The "workflow started" record of a new post is written after the answer, in a batch: it lands, it is written at
shutdown, and a late one never makes the reconciler start a post twice or vouch for a newer scheduling."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import Session, col, select
from temporalio.client import WorkflowExecutionStatus

from api import main, reconciler
from api.crud import posts as crud
from api.crud import workflow_starts
from api.deps import AppServices
from api.start_records import StartRecorder
from chronogram.contracts import post_workflow_id
from chronogram.enums import PostStatus
from chronogram.lifecycle import DedupeKey
from chronogram.models import Post, PostEvent
from chronogram.settings import Settings
from tests.api.helpers import ApiUser, record_post, schedule_ok, workflow_runs

NO_GRACE = timedelta(0)


def _started_runs(services: AppServices, post_id: int) -> list[str]:
    """The run ids of the post's "workflow started" records, oldest first."""
    with Session(services.engine) as session:
        events = session.exec(
            select(PostEvent)
            .where(
                PostEvent.post_id == post_id,
                col(PostEvent.dedupe_key).startswith(DedupeKey.WORKFLOW_STARTED_PREFIX),
            )
            .order_by(col(PostEvent.id))
        ).all()
    return [str((event.detail or {}).get("run_id")) for event in events]


async def _run_id(services: AppServices, post_id: int) -> str:
    description = await services.temporal.get_workflow_handle(post_workflow_id(post_id)).describe()
    return description.run_id


AnotherApi = Callable[[], AbstractAsyncContextManager[tuple[AppServices, httpx.AsyncClient]]]


@pytest.fixture
def another_api(api_settings: Settings, monkeypatch: pytest.MonkeyPatch, alice: ApiUser) -> AnotherApi:
    """Runs a second API process on the same database, whose queued records wait for its shutdown (or its
    reconciler): its services, and a client that calls it as alice."""

    @asynccontextmanager
    async def run() -> AsyncIterator[tuple[AppServices, httpx.AsyncClient]]:
        monkeypatch.setattr(main, "StartRecorder", functools.partial(StartRecorder, interval=3600))
        application = main.create_app(api_settings)
        async with (
            application.router.lifespan_context(application),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=application),
                base_url="http://testserver",
                headers={"Authorization": f"Bearer {alice.key}"},
            ) as client,
        ):
            services: AppServices = application.state.services
            yield services, client

    return run


async def test_the_record_is_written_after_the_answer(
    alice: ApiUser, ready: dict[str, Any], services: AppServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = workflow_starts.record_workflow_starts
    release = threading.Event()

    def held(session: Session, started: Sequence[workflow_starts.StartedRun]) -> None:
        assert release.wait(30), "the test never released the recorder"
        real(session, started)

    monkeypatch.setattr(workflow_starts, "record_workflow_starts", held)
    try:
        began = time.monotonic()
        post = await schedule_ok(alice.client, ready["account"]["id"], [ready["media"]])
        assert time.monotonic() - began < 10  # answered while no record could be written
        assert _started_runs(services, post["id"]) == []
    finally:
        release.set()
    run_id = await _run_id(services, post["id"])
    for _ in range(50):
        if _started_runs(services, post["id"]):
            break
        await asyncio.sleep(0.1)
    assert _started_runs(services, post["id"]) == [run_id]


async def test_queued_records_are_written_at_shutdown(
    ready: dict[str, Any], services: AppServices, another_api: AnotherApi
) -> None:
    async with another_api() as (_services, client):
        post = await schedule_ok(client, ready["account"]["id"], [ready["media"]])
        assert await workflow_runs(services, post["id"]) == [WorkflowExecutionStatus.RUNNING]
        assert _started_runs(services, post["id"]) == []
    assert _started_runs(services, post["id"]) == [await _run_id(services, post["id"])]


async def test_the_history_shows_a_queued_start(ready: dict[str, Any], another_api: AnotherApi) -> None:
    async with another_api() as (services, client):
        post = await schedule_ok(client, ready["account"]["id"], [ready["media"]])
        detail = (await client.get(f"/v1/posts/{post['id']}")).json()
        assert [event["message"] for event in detail["events"]] == ["created", "workflow started"]
        assert _started_runs(services, post["id"]) == [await _run_id(services, post["id"])]


async def test_the_reconciler_writes_queued_records_before_looking(
    ready: dict[str, Any], another_api: AnotherApi
) -> None:
    async with another_api() as (services, client):
        post = await schedule_ok(client, ready["account"]["id"], [ready["media"]])
        assert _started_runs(services, post["id"]) == []
        assert post["id"] not in await reconciler.reconcile_once(services, grace=NO_GRACE)
        assert _started_runs(services, post["id"]) == [await _run_id(services, post["id"])]


async def test_a_record_queued_elsewhere_costs_one_harmless_start(
    ready: dict[str, Any], services: AppServices, another_api: AnotherApi
) -> None:
    async with another_api() as (_services, client):
        post = await schedule_ok(client, ready["account"]["id"], [ready["media"]])
        run_id = await _run_id(services, post["id"])
        # This process's reconciler cannot see the other's queue: past the grace period, it starts the post
        # again, which finds the running workflow and records it.
        assert post["id"] in await reconciler.reconcile_once(services, grace=NO_GRACE)
        assert _started_runs(services, post["id"]) == [run_id]
        assert post["id"] not in await reconciler.reconcile_once(services, grace=NO_GRACE)
    # The late record, written at the other's shutdown, is the same run: nothing is recorded or started twice.
    assert _started_runs(services, post["id"]) == [run_id]
    assert await workflow_runs(services, post["id"]) == [WorkflowExecutionStatus.RUNNING]
    assert post["id"] not in await reconciler.reconcile_once(services, grace=NO_GRACE)


async def test_a_record_that_lands_after_a_retry_is_dropped(
    alice: ApiUser, ready: dict[str, Any], services: AppServices
) -> None:
    def awaiting(session: Session) -> set[int]:
        later = datetime.now(UTC) + timedelta(minutes=1)
        return {
            start.post_id
            for start in workflow_starts.posts_awaiting_workflow(session, updated_before=later, limit=1000)
        }

    def started(post_id: int, run_id: str, intent_id: int | None) -> workflow_starts.StartedRun:
        return workflow_starts.StartedRun(
            post_id=post_id, run_id=run_id, intent_id=intent_id, started_at=datetime.now(UTC)
        )

    with Session(services.engine, expire_on_commit=False) as session:
        created = record_post(session, alice, ready)
        assert created.start is not None and created.start.intent_id is not None
        post_id = created.post_id
        # Its first run failed, and a retry scheduled it again before the first run's record was written.
        row = session.get(Post, post_id)
        assert row is not None
        row.status = PostStatus.FAILED
        session.add(row)
        session.commit()
        assert crud.begin_retry(session, post_id=post_id, publish_at=datetime.now(UTC) + timedelta(days=1))
        retry = workflow_starts.workflow_start(session, post_id=post_id)
        assert retry is not None and retry.intent_id is not None and retry.intent_id > created.start.intent_id

        workflow_starts.record_workflow_starts(
            session, [started(post_id, "first-run", created.start.intent_id)]
        )
        assert _started_runs(services, post_id) == []
        assert post_id in awaiting(session)  # the retry's run is still missing

        workflow_starts.record_workflow_starts(session, [started(post_id, "second-run", retry.intent_id)] * 2)
        workflow_starts.record_workflow_starts(session, [started(post_id, "second-run", retry.intent_id)])
        assert _started_runs(services, post_id) == ["second-run"]
        assert post_id not in awaiting(session)


async def test_a_batch_records_what_it_can(
    alice: ApiUser, ready: dict[str, Any], services: AppServices
) -> None:
    post = await schedule_ok(alice.client, ready["account"]["id"], [ready["media"]])
    await services.start_records.flush()
    now = datetime.now(UTC)
    with Session(services.engine) as session:
        workflow_starts.record_workflow_starts(
            session,
            [
                # Its account was deleted, with its posts, before the batch was written.
                workflow_starts.StartedRun(
                    post_id=post["id"] + 10**9, run_id="gone", intent_id=None, started_at=now
                ),
                workflow_starts.StartedRun(
                    post_id=post["id"], run_id="another-run", intent_id=None, started_at=now
                ),
            ],
        )
    assert _started_runs(services, post["id"]) == [await _run_id(services, post["id"]), "another-run"]
