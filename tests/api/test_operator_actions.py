"""Operators' actions in Temporal (cancel, terminate) on a post's workflow leave the database true: a cancellation
finishes the post as cancelled, naming who asked (the run itself); a terminated run is replaced by a fresh one
within one reconciler pass, which publishes exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col
from temporalio.client import WorkflowExecutionStatus

from api import reconciler
from api.deps import AppServices
from chronogram.contracts import POST_STATUS, post_workflow_id
from chronogram.enums import PostStatus
from chronogram.models import Post
from sandbox.admin_client import SandboxAdmin
from tests.api.helpers import ApiUser, at, connect, schedule_ok, upload_ok, wait_for


async def _post(alice: ApiUser, sandbox: SandboxAdmin) -> tuple[dict[str, Any], dict[str, Any]]:
    account = await connect(alice.client, sandbox)
    post = await schedule_ok(
        alice.client, account["id"], [await upload_ok(alice.client)], publish_at=at(3600)
    )
    return account, post


async def _closed(services: AppServices, post_id: int) -> WorkflowExecutionStatus | None:
    """How the post's latest run ended, once visibility (what the reconciler lists) shows it closed too: it
    lags the run itself."""
    workflow_id = post_workflow_id(post_id)
    handle = services.temporal.get_workflow_handle(workflow_id)
    query = f"WorkflowId = '{workflow_id}' AND ExecutionStatus != 'Running'"
    for _ in range(100):
        status = (await handle.describe()).status
        if (
            status is not WorkflowExecutionStatus.RUNNING
            and (await services.temporal.count_workflows(query)).count
        ):
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"the run of post {post_id} did not close")


async def _messages(alice: ApiUser, post_id: int) -> list[str]:
    detail = (await alice.client.get(f"/v1/posts/{post_id}")).json()
    return [event["message"] for event in detail["events"]]


async def test_a_cancellation_requested_in_temporal_cancels_the_post(
    alice: ApiUser, sandbox: SandboxAdmin, services: AppServices
) -> None:
    account, post = await _post(alice, sandbox)
    handle = services.temporal.get_workflow_handle(post_workflow_id(post["id"]))
    await handle.cancel()
    # The run itself finishes the post as cancelled: status, search attribute, an event naming who asked.
    assert await _closed(services, post["id"]) is WorkflowExecutionStatus.COMPLETED
    await wait_for(alice.client, post["id"], "cancelled", within=5)
    messages = await _messages(alice, post["id"])
    assert any(
        message.startswith(f"cancelled in Temporal by {services.temporal.identity}") for message in messages
    )
    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(POST_STATUS) == "cancelled"
    # Nothing left for the reconciler.
    assert post["id"] not in await reconciler.repair_unfinished_runs(services, closed_after=None)
    assert await sandbox.published(account["ig_user_id"]) == []


async def test_a_terminated_run_is_replaced_and_the_post_publishes_once(
    alice: ApiUser, sandbox: SandboxAdmin, services: AppServices
) -> None:
    account, post = await _post(alice, sandbox)
    handle = services.temporal.get_workflow_handle(post_workflow_id(post["id"]))
    first_run = (await handle.describe()).run_id
    await handle.terminate(reason="stuck, says the on-call")
    assert await _closed(services, post["id"]) is WorkflowExecutionStatus.TERMINATED
    assert (await alice.client.get(f"/v1/posts/{post['id']}")).json()["status"] == "scheduled"

    assert post["id"] in await reconciler.repair_unfinished_runs(services, closed_after=None)
    description = await handle.describe()
    assert description.status is WorkflowExecutionStatus.RUNNING and description.run_id != first_run
    assert any(
        "terminated in Temporal" in message and "stuck, says the on-call" in message
        for message in await _messages(alice, post["id"])
    )
    assert post["id"] not in await reconciler.repair_unfinished_runs(services, closed_after=None)

    published = await alice.client.post(f"/v1/posts/{post['id']}/publish-now")
    assert published.status_code == 202, published.text
    await wait_for(alice.client, post["id"], "published")
    assert len(await sandbox.published(account["ig_user_id"])) == 1


async def test_a_run_terminated_while_publishing_hands_over_without_publishing_twice(
    alice: ApiUser, sandbox: SandboxAdmin, services: AppServices
) -> None:
    account, post = await _post(alice, sandbox)
    handle = services.temporal.get_workflow_handle(post_workflow_id(post["id"]))
    await handle.terminate(reason="operator")
    assert await _closed(services, post["id"]) is WorkflowExecutionStatus.TERMINATED
    with Session(services.engine) as session:  # the dead run had begun publishing
        session.execute(update(Post).where(col(Post.id) == post["id"]).values(status=PostStatus.PUBLISHING))
        session.commit()

    assert post["id"] in await reconciler.repair_unfinished_runs(services, closed_after=None)
    assert (await alice.client.get(f"/v1/posts/{post['id']}")).json()["status"] == "scheduled"
    assert (await alice.client.post(f"/v1/posts/{post['id']}/publish-now")).status_code == 202
    await wait_for(alice.client, post["id"], "published")
    assert len(await sandbox.published(account["ig_user_id"])) == 1


async def test_only_runs_closed_since_the_last_pass_are_looked_at(
    alice: ApiUser, sandbox: SandboxAdmin, services: AppServices
) -> None:
    _account, post = await _post(alice, sandbox)
    await services.temporal.get_workflow_handle(post_workflow_id(post["id"])).terminate(reason="operator")
    await _closed(services, post["id"])
    later = (await services.temporal.get_workflow_handle(post_workflow_id(post["id"])).describe()).close_time
    assert later is not None
    assert post["id"] not in await reconciler.repair_unfinished_runs(services, closed_after=later)
    assert post["id"] in await reconciler.repair_unfinished_runs(services, closed_after=None)
