"""Idempotency-Key: a retried POST /v1/posts returns the first result instead of scheduling twice."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import pytest_asyncio
from sqlmodel import Session, col, func, select

from api.deps import AppServices
from api.schemas.posts import PostCreate
from api.use_cases.post_creation import _fingerprint
from chronogram import scheduling
from chronogram.contracts import post_workflow_id
from chronogram.models import Post
from sandbox.admin_client import SandboxAdmin
from tests.api.helpers import ApiUser, assert_problem, at, connect, upload_ok, workflow_runs


@pytest_asyncio.fixture
async def body(alice: ApiUser, sandbox: SandboxAdmin) -> dict[str, Any]:
    account = await connect(alice.client, sandbox)
    media_id = await upload_ok(alice.client)
    return {
        "account_id": account["id"],
        "type": "IMAGE",
        "media_ids": [media_id],
        "caption": "once",
        "publish_at": at(86400),
    }


def _posts_of(services: AppServices, account_id: int) -> int:
    with Session(services.engine) as session:
        return session.exec(
            select(func.count()).select_from(Post).where(col(Post.account_id) == account_id)
        ).one()


async def _runs(services: AppServices, post_id: int) -> int:
    return len(
        [run async for run in services.temporal.list_workflows(f"WorkflowId = '{post_workflow_id(post_id)}'")]
    )


async def test_a_retried_request_returns_the_first_post(
    alice: ApiUser, body: dict[str, Any], services: AppServices
) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await alice.client.post("/v1/posts", json=body, headers=key)
    second = await alice.client.post("/v1/posts", json=body, headers=key)
    assert first.status_code == second.status_code == 201
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json()["id"] == first.json()["id"]
    assert second.json() == first.json()
    assert _posts_of(services, body["account_id"]) == 1
    await services.temporal.get_workflow_handle(post_workflow_id(first.json()["id"])).describe()

    # Without a key, the same body is a new post.
    third = await alice.client.post("/v1/posts", json=body)
    assert third.status_code == 201 and third.json()["id"] != first.json()["id"]


async def test_the_same_key_with_another_request_is_refused(alice: ApiUser, body: dict[str, Any]) -> None:
    key = {"Idempotency-Key": "order-1234"}
    assert (await alice.client.post("/v1/posts", json=body, headers=key)).status_code == 201
    response = await alice.client.post("/v1/posts", json=body | {"caption": "twice"}, headers=key)
    assert_problem(response, 422, "idempotency_key_reused", field="Idempotency-Key")


async def test_keys_belong_to_their_user(
    alice: ApiUser, bob: ApiUser, body: dict[str, Any], sandbox: SandboxAdmin
) -> None:
    key = {"Idempotency-Key": "shared-key"}
    mine = await alice.client.post("/v1/posts", json=body, headers=key)
    bobs_body = body | {
        "account_id": (await connect(bob.client, sandbox))["id"],
        "media_ids": [await upload_ok(bob.client)],
    }
    theirs = await bob.client.post("/v1/posts", json=bobs_body, headers=key)
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert "idempotent-replayed" not in theirs.headers


async def test_concurrent_retries_create_one_post(
    alice: ApiUser, body: dict[str, Any], services: AppServices
) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    responses = await asyncio.gather(
        *(alice.client.post("/v1/posts", json=body, headers=key) for _ in range(6))
    )
    assert {response.status_code for response in responses} == {201}
    assert len({response.json()["id"] for response in responses}) == 1
    assert _posts_of(services, body["account_id"]) == 1
    assert len(await workflow_runs(services, responses[0].json()["id"])) == 1


@pytest.mark.parametrize("value", ["", "k" * 256])
async def test_key_length(alice: ApiUser, body: dict[str, Any], value: str) -> None:
    response = await alice.client.post("/v1/posts", json=body, headers={"Idempotency-Key": value})
    assert_problem(response, 422, "validation_error", field="Idempotency-Key")


async def test_a_retry_after_a_lost_start_starts_the_workflow(
    alice: ApiUser, body: dict[str, Any], services: AppServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = scheduling.start_post_workflow

    async def unavailable(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("Temporal unreachable")

    monkeypatch.setattr(scheduling, "start_post_workflow", unavailable)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await alice.client.post("/v1/posts", json=body, headers=key)
    assert first.status_code == 201, first.text
    assert await workflow_runs(services, first.json()["id"]) == []

    monkeypatch.setattr(scheduling, "start_post_workflow", real)
    second = await alice.client.post("/v1/posts", json=body, headers=key)
    assert second.json()["id"] == first.json()["id"]
    await services.temporal.get_workflow_handle(post_workflow_id(first.json()["id"])).describe()
    assert _posts_of(services, body["account_id"]) == 1


async def test_a_late_retry_still_gets_the_first_post(
    alice: ApiUser, body: dict[str, Any], services: AppServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services.settings, "api_publish_at_past_tolerance_seconds", 0.0)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    soon = body | {"publish_at": at(1)}
    first = await alice.client.post("/v1/posts", json=soon, headers=key)
    assert first.status_code == 201, first.text
    await asyncio.sleep(1.5)
    # By now the same body would be refused as new (publish_at is past); as a retry it is the first post.
    assert_problem(await alice.client.post("/v1/posts", json=soon), 422, "publish_at_in_past")
    retried = await alice.client.post("/v1/posts", json=soon, headers=key)
    assert retried.status_code == 201, retried.text
    assert retried.json()["id"] == first.json()["id"]


def test_a_request_without_the_fields_added_since_fingerprints_as_before() -> None:
    """template_id, variables and draft came later: a request retried across the upgrade keeps its fingerprint."""
    body = {
        "account_id": 1,
        "type": "IMAGE",
        "media_ids": [2],
        "caption": "x",
        "publish_at": "2027-01-01T00:00:00Z",
    }
    # Computed by the code before those fields existed.
    assert _fingerprint(PostCreate.model_validate(body)) == (
        "9718d93864a58315ccac7baa337e179b9e6936398d83293f19c0cc5c95d42db9"
    )
