"""No post without a workflow, no workflow without a post: the window between the database write and the
workflow start, closed by the reconciler (at start-up, periodically, and on read)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import Session, func, select
from temporalio.client import WorkflowExecutionStatus

from api import reconciler, temporal_gateway
from api.crud import posts as crud
from api.crud import workflow_starts
from api.deps import AppServices
from api.main import create_app
from chronogram import scheduling
from chronogram.contracts import ErrorType, post_workflow_id
from chronogram.enums import PostStatus, PostType
from chronogram.models import Post
from chronogram.settings import Settings
from tests.api.helpers import (
    ApiUser,
    assert_problem,
    record_post,
    schedule,
    schedule_ok,
    workflow_runs,
)

NO_GRACE = timedelta(0)


async def _has_workflow(services: AppServices, post_id: int) -> bool:
    return bool(await workflow_runs(services, post_id))


def _fail_starts(monkeypatch: pytest.MonkeyPatch, times: int) -> list[int]:
    """The next ``times`` starts fail after the post was committed, as if the process died right there."""
    real = scheduling.start_post_workflow
    failed: list[int] = []

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        if len(failed) < times:
            failed.append(kwargs["post_id"])
            raise ConnectionError("simulated crash between the database write and the workflow start")
        return await real(*args, **kwargs)

    monkeypatch.setattr(scheduling, "start_post_workflow", flaky)
    return failed


async def test_a_lost_start_is_reconciled_exactly_once(
    alice: ApiUser, ready: dict[str, Any], services: AppServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed = _fail_starts(monkeypatch, times=1)
    response = await schedule(alice.client, ready["account"]["id"], [ready["media"]])
    assert response.status_code == 201, response.text  # recorded: the post exists and will be started
    post_id = response.json()["id"]
    assert failed == [post_id]
    assert not await _has_workflow(services, post_id)

    # Too young: left to the request that may still be starting it.
    assert post_id not in await reconciler.reconcile_once(services, grace=timedelta(hours=1))
    assert not await _has_workflow(services, post_id)

    assert post_id in await reconciler.reconcile_once(services, grace=NO_GRACE)
    assert await workflow_runs(services, post_id) == [WorkflowExecutionStatus.RUNNING]
    # A second pass, or a start by anyone else, finds the workflow recorded and starts nothing.
    assert post_id not in await reconciler.reconcile_once(services, grace=NO_GRACE)
    request = workflow_starts.WorkflowStart(
        post_id=post_id,
        account_id=ready["account"]["id"],
        username=ready["account"]["username"],
        post_type=PostType.IMAGE,
        publish_at=datetime.fromisoformat(response.json()["publish_at"]),
    )
    await temporal_gateway.start(services, request)
    assert await workflow_runs(services, post_id) == [WorkflowExecutionStatus.RUNNING]
    detail = (await alice.client.get(f"/v1/posts/{post_id}")).json()
    assert detail["live"]["status"] == "scheduled"
    assert [e["message"] for e in detail["events"]].count("workflow started") == 1


async def test_a_start_whose_record_was_lost_is_not_started_twice(
    alice: ApiUser, ready: dict[str, Any], services: AppServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    await services.start_records.flush()  # the batch that fails holds this test's start only
    real = workflow_starts.record_workflow_starts
    calls: list[list[int]] = []

    def crash_once(session: Session, started: Sequence[workflow_starts.StartedRun]) -> None:
        calls.append([run.post_id for run in started])
        if len(calls) == 1:
            raise ConnectionError("simulated crash after the start, before it was recorded")
        real(session, started)

    monkeypatch.setattr(workflow_starts, "record_workflow_starts", crash_once)
    post = await schedule_ok(alice.client, ready["account"]["id"], [ready["media"]])
    await services.start_records.flush()
    assert calls == [[post["id"]]]
    assert await workflow_runs(services, post["id"]) == [WorkflowExecutionStatus.RUNNING]
    assert post["id"] in await reconciler.reconcile_once(services, grace=NO_GRACE)
    assert await workflow_runs(services, post["id"]) == [
        WorkflowExecutionStatus.RUNNING
    ]  # the same run, found again
    assert post["id"] not in await reconciler.reconcile_once(services, grace=NO_GRACE)


async def test_no_workflow_without_a_post(
    alice: ApiUser,
    ready: dict[str, Any],
    services: AppServices,
    monkeypatch: pytest.MonkeyPatch,
    app: FastAPI,
) -> None:
    def disk_full(*_args: object, **_kwargs: object) -> None:
        raise OSError("database or disk is full")

    with Session(services.engine) as session:
        next_id = (session.exec(select(func.max(Post.id))).one() or 0) + 1
    monkeypatch.setattr(crud, "create_post", disk_full)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"Authorization": f"Bearer {alice.key}"}
    ) as client:
        response = await schedule(client, ready["account"]["id"], [ready["media"]])
    assert_problem(response, 500, "internal_error")
    for post_id in (next_id, next_id + 1):
        assert not await _has_workflow(services, post_id)


async def test_the_api_reconciles_at_start_up(
    alice: ApiUser, ready: dict[str, Any], services: AppServices, api_settings: Settings
) -> None:
    # The process died right after the commit: the post is in the database and nothing else happened.
    with Session(services.engine) as session:
        created = record_post(session, alice, ready, caption="recorded, then the process died")
    assert not await _has_workflow(services, created.post_id)

    restarted = create_app(api_settings.model_copy(update={"api_reconcile_grace_seconds": 0.0}))
    async with restarted.router.lifespan_context(restarted):
        for _ in range(100):
            if await _has_workflow(services, created.post_id):
                break
            await asyncio.sleep(0.1)
    assert await workflow_runs(services, created.post_id) == [WorkflowExecutionStatus.RUNNING]


async def test_reading_a_post_without_workflow_starts_it(
    alice: ApiUser, ready: dict[str, Any], services: AppServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fail_starts(monkeypatch, times=1)
    post = await schedule_ok(alice.client, ready["account"]["id"], [ready["media"]])
    young = (await alice.client.get(f"/v1/posts/{post['id']}")).json()
    assert young["live"] is None and not await _has_workflow(services, post["id"])

    with Session(services.engine) as session:  # older than the grace period
        row = session.get(Post, post["id"])
        assert row is not None
        row.updated_at = datetime.now(UTC) - timedelta(minutes=5)
        session.add(row)
        session.commit()
    await alice.client.get(f"/v1/posts/{post['id']}")
    assert await workflow_runs(services, post["id"]) == [WorkflowExecutionStatus.RUNNING]
    assert (await alice.client.get(f"/v1/posts/{post['id']}")).json()["live"]["status"] == "scheduled"


async def test_signals_to_a_post_without_workflow_start_it_first(
    alice: ApiUser, ready: dict[str, Any], services: AppServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fail_starts(monkeypatch, times=1)
    post = await schedule_ok(alice.client, ready["account"]["id"], [ready["media"]])
    assert not await _has_workflow(services, post["id"])
    response = await alice.client.post(f"/v1/posts/{post['id']}/cancel")
    assert response.status_code == 202, response.text
    result = await services.temporal.get_workflow_handle(post_workflow_id(post["id"])).result()
    assert result["status"] == "cancelled"
    assert await workflow_runs(services, post["id"]) == [WorkflowExecutionStatus.COMPLETED]


async def test_a_lost_retry_start_is_reconciled_with_a_fresh_run(
    alice: ApiUser, ready: dict[str, Any], services: AppServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    post = await schedule_ok(alice.client, ready["account"]["id"], [ready["media"]])
    # Its run ends without publishing (here: terminated), and the row says failed.
    await services.temporal.get_workflow_handle(post_workflow_id(post["id"])).terminate("test: a failed run")
    with Session(services.engine) as session:
        row = session.get(Post, post["id"])
        assert row is not None
        row.status, row.error_code = PostStatus.FAILED, ErrorType.UNEXPECTED
        session.add(row)
        session.commit()

    _fail_starts(monkeypatch, times=1)
    response = await alice.client.post(f"/v1/posts/{post['id']}/retry")
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "scheduled"
    assert await workflow_runs(services, post["id"]) == [WorkflowExecutionStatus.TERMINATED]

    assert post["id"] in await reconciler.reconcile_once(services, grace=NO_GRACE)
    assert await workflow_runs(services, post["id"]) == [
        WorkflowExecutionStatus.TERMINATED,
        WorkflowExecutionStatus.RUNNING,
    ]
    assert post["id"] not in await reconciler.reconcile_once(services, grace=NO_GRACE)
