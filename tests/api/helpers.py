"""Building blocks for API tests: the common calls a client makes (media files are in tests.support.media)."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlmodel import Session
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from api.crud import posts as crud
from api.deps import AppServices
from chronogram.contracts import post_workflow_id
from chronogram.enums import PostType
from sandbox.admin_client import SandboxAdmin
from tests.support.media import jpeg


@dataclass(frozen=True)
class ApiUser:
    user_id: int
    key: str
    client: httpx.AsyncClient


def at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def upload(
    client: httpx.AsyncClient, data: bytes, *, filename: str = "photo.jpg", content_type: str = "image/jpeg"
) -> httpx.Response:
    return await client.post("/v1/media", files={"file": (filename, data, content_type)})


async def upload_ok(client: httpx.AsyncClient, data: bytes | None = None, **kwargs: Any) -> int:
    response = await upload(client, data if data is not None else jpeg(), **kwargs)
    assert response.status_code == 201, response.text
    media_id: int = response.json()["id"]
    return media_id


async def connect(client: httpx.AsyncClient, sandbox: SandboxAdmin) -> dict[str, Any]:
    """A fresh sandbox account (its own quota and published media), connected through the API."""
    account = await sandbox.create_account(f"shop_{uuid.uuid4().hex[:8]}")
    response = await client.post(
        "/v1/accounts", json={"ig_user_id": account.ig_user_id, "access_token": account.access_token}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def schedule(
    client: httpx.AsyncClient, account_id: int, media_ids: list[int], **fields: Any
) -> httpx.Response:
    body: dict[str, Any] = {
        "account_id": account_id,
        "type": "IMAGE",
        "media_ids": media_ids,
        "caption": "Hello",
    }
    body.update(fields)
    if "publish_at" not in fields:
        body["publish_at"] = at(86400)
    return await client.post("/v1/posts", json=body)


async def schedule_ok(
    client: httpx.AsyncClient, account_id: int, media_ids: list[int], **fields: Any
) -> dict[str, Any]:
    response = await schedule(client, account_id, media_ids, **fields)
    assert response.status_code == 201, response.text
    post: dict[str, Any] = response.json()
    return post


def record_post(
    session: Session, owner: ApiUser, ready: dict[str, Any], *, caption: str | None = None
) -> crud.Created:
    """An image post of ``ready``'s account and media, a day ahead, written to the database the way the API
    records one, and nothing more: no workflow is started for it."""
    return crud.create_post(
        session,
        new=crud.NewPost(
            owner_id=owner.user_id,
            account_id=ready["account"]["id"],
            account_username=ready["account"]["username"],
            post_type=PostType.IMAGE,
            media_ids=[ready["media"]],
            publish_at=datetime.now(UTC) + timedelta(days=1),
            caption=caption,
        ),
    )


async def wait_for(
    client: httpx.AsyncClient, post_id: int, status: str, *, within: float = 20.0
) -> dict[str, Any]:
    """Poll GET /v1/posts/{id} until the post has ``status``."""
    deadline = time.monotonic() + within
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = await client.get(f"/v1/posts/{post_id}")
        assert response.status_code == 200, response.text
        last = response.json()
        if last["status"] == status:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"post {post_id} did not become {status}: {last}")


async def settled_deliveries(
    client: httpx.AsyncClient, webhook_id: int, *, count: int, within: float = 20.0
) -> list[dict[str, Any]]:
    """Poll a webhook's delivery log until it holds ``count`` deliveries, all delivered.

    The receiver sees a request before the worker records its answer, so a log read the moment the
    receiver has everything can still show the last few as pending."""
    deadline = time.monotonic() + within
    log: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        response = await client.get(f"/v1/webhooks/{webhook_id}/deliveries")
        assert response.status_code == 200, response.text
        log = response.json()["data"]
        if len(log) == count and all(d["status"] == "delivered" for d in log):
            return log
        await asyncio.sleep(0.2)
    raise AssertionError(f"webhook {webhook_id}'s {count} deliveries were not all delivered: {log}")


def assert_problem(
    response: httpx.Response, status: int, code: str, *, field: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["code"] == code, body
    assert body["type"] == f"urn:chronogram:problem:{code}"
    assert isinstance(body["detail"], str) and body["detail"]
    if field is not None:
        fields = [body.get("field")] + [error["field"] for error in body.get("errors") or []]
        assert field in fields, body
    return body


async def workflow_runs(services: AppServices, post_id: int) -> list[WorkflowExecutionStatus | None]:
    """The statuses of every run of the post's workflow id, oldest first."""
    handle = services.temporal.get_workflow_handle(post_workflow_id(post_id))
    try:
        latest = await handle.describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return []
        raise
    # Visibility (the list) lags behind describe: wait until it shows the latest run as describe does.
    query = f"WorkflowId = '{post_workflow_id(post_id)}'"
    for _ in range(100):
        runs = [run async for run in services.temporal.list_workflows(query)]
        if any(run.run_id == latest.run_id and run.status == latest.status for run in runs):
            return [run.status for run in sorted(runs, key=lambda run: run.start_time)]
        await asyncio.sleep(0.1)
    raise AssertionError("visibility never caught up")
