"""An account's token on the real stack: exchanged at connect, refreshed by its workflow across several of its
lifetimes, and an account whose token is revoked or loses its publishing permission shown as needing
reconnecting, refused new posts, and active again once reconnected."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session
from temporalio.client import WorkflowExecutionStatus

from api.deps import AppServices
from chronogram.contracts import account_tokens_workflow_id
from chronogram.models import InstagramAccount
from sandbox.admin_client import SandboxAdmin
from tests.accounts.conftest import REFRESH_LEAD, TOKEN_LIFETIME, User
from tests.support.media import jpeg

PUBLISH_SCOPE = "instagram_business_content_publish"


def stored_token(services: AppServices, account_id: int) -> str:
    with Session(services.engine) as session:
        row = session.get(InstagramAccount, account_id)
        assert row is not None
        return row.access_token(services.cipher).get_secret_value()


async def detail(user: User, account_id: int) -> dict[str, Any]:
    response = await user.client.get(f"/v1/accounts/{account_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def connect(user: User, ig_user_id: str, token: str, expected: int = 201) -> dict[str, Any]:
    response = await user.client.post("/v1/accounts", json={"ig_user_id": ig_user_id, "access_token": token})
    assert response.status_code == expected, response.text
    assert token not in response.text
    body: dict[str, Any] = response.json()
    return body


async def schedule(user: User, account_id: int, *, in_seconds: float = 86400) -> Any:
    upload = await user.client.post("/v1/media", files={"file": ("photo.jpg", jpeg(), "image/jpeg")})
    assert upload.status_code == 201, upload.text
    publish_at = (datetime.now(UTC) + timedelta(seconds=in_seconds)).isoformat()
    return await user.client.post(
        "/v1/posts",
        json={
            "account_id": account_id,
            "type": "IMAGE",
            "media_ids": [upload.json()["id"]],
            "publish_at": publish_at,
        },
    )


async def until(condition: Any, *, within: float = 20.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await condition()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.25)


async def test_a_refreshed_token_keeps_the_account_active_across_several_expiries(
    user: User, sandbox: SandboxAdmin, services: AppServices
) -> None:
    account = await sandbox.create_account("refreshing")
    short = await sandbox.issue_token(account.ig_user_id, lifetime="short")
    connected = await connect(user, account.ig_user_id, short)
    account_id = connected["id"]
    assert connected["status"] == "active"
    expires_at = datetime.fromisoformat(connected["token_expires_at"])
    assert abs(expires_at - (datetime.now(UTC) + TOKEN_LIFETIME)) < timedelta(seconds=3)
    first = stored_token(services, account_id)
    assert first != short  # exchanged for a long-lived one

    seen: set[str] = set()
    started = time.monotonic()
    while time.monotonic() - started < 3.5 * TOKEN_LIFETIME.total_seconds():
        body = await detail(user, account_id)
        seen.add(body["status"])
        # Every Graph call with the stored token works: it is never the expired one.
        assert body["publishing_quota"] is not None, body["publishing_quota_error"]
        await asyncio.sleep(0.5)
    # "expiring" may show for the moment between the refresh being due and being done.
    assert seen <= {"active", "expiring"}, seen

    body = await detail(user, account_id)
    kinds = [event["kind"] for event in body["events"]]
    assert kinds[:2] == ["connected", "token_exchanged"]
    refreshes = [event for event in body["events"] if event["kind"] == "token_refreshed"]
    assert len(refreshes) >= 3, kinds  # the first token alone would have expired three times over
    expiries = [datetime.fromisoformat(event["token_expires_at"]) for event in refreshes]
    assert expiries == sorted(expiries)
    assert datetime.fromisoformat(body["token_expires_at"]) > datetime.now(UTC)
    assert stored_token(services, account_id) not in str(body)
    # Each refresh came about REFRESH_LEAD before the token it replaced expired.
    for before, after in zip([expires_at, *expiries], expiries, strict=False):
        assert after - TOKEN_LIFETIME <= before - REFRESH_LEAD + timedelta(seconds=2)


async def test_a_revoked_token_needs_reconnecting_until_the_account_is_reconnected(
    user: User, sandbox: SandboxAdmin, services: AppServices
) -> None:
    account = await sandbox.create_account("revoked")
    connected = await connect(
        user, account.ig_user_id, await sandbox.issue_token(account.ig_user_id, lifetime="short")
    )
    account_id = connected["id"]

    async def revoked() -> bool:
        # The workflow may refresh the token between the read and the revocation: revoke until the one stored is.
        await sandbox.revoke_token(stored_token(services, account_id))
        return bool((await detail(user, account_id))["status"] == "needs_reconnect")

    assert await until(revoked, within=10)
    body = await detail(user, account_id)
    assert body["status_reason"] == "token_invalid" and body["status_detail"]
    listed = (await user.client.get("/v1/accounts")).json()["data"]
    assert [(a["id"], a["status"]) for a in listed] == [(account_id, "needs_reconnect")]
    assert body["events"][-1]["kind"] == "needs_reconnect"
    assert body["events"][-1]["reason"] == "token_invalid"

    refused = await schedule(user, account_id)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "account_needs_reconnect"

    fresh = await sandbox.issue_token(account.ig_user_id, lifetime="short")
    reconnected = await connect(user, account.ig_user_id, fresh, expected=200)
    assert reconnected["status"] == "active" and reconnected["status_reason"] is None
    body = await detail(user, account_id)
    assert body["status"] == "active" and body["publishing_quota"] is not None
    assert "reconnected" in [event["kind"] for event in body["events"]]
    accepted = await schedule(user, account_id)
    assert accepted.status_code == 201, accepted.text


async def test_a_withdrawn_publishing_permission_is_told_apart_from_a_dead_token(
    user: User, sandbox: SandboxAdmin, services: AppServices
) -> None:
    account = await sandbox.create_account("unpermitted")
    connected = await connect(
        user, account.ig_user_id, await sandbox.issue_token(account.ig_user_id, lifetime="short")
    )
    account_id = connected["id"]
    response = await schedule(user, account_id, in_seconds=2)
    assert response.status_code == 201, response.text

    async def withdrawn() -> bool:
        # Refreshed tokens keep the permissions of the one they replace: withdraw it from the one stored.
        await sandbox.remove_scope(stored_token(services, account_id), PUBLISH_SCOPE)
        return bool((await detail(user, account_id))["status"] == "needs_reconnect")

    assert await until(withdrawn, within=30)
    body = await detail(user, account_id)
    assert body["status_reason"] == "permission_missing"
    assert body["status_detail"] == f"the {PUBLISH_SCOPE} permission was withdrawn"
    # The token itself still works: reads go on.
    assert body["publishing_quota"] is not None


async def test_the_token_workflow_runs_while_the_account_is_connected_and_ends_with_it(
    user: User, sandbox: SandboxAdmin, services: AppServices
) -> None:
    account = await sandbox.create_account("leaving")
    connected = await connect(user, account.ig_user_id, account.access_token)
    handle = services.temporal.get_workflow_handle(account_tokens_workflow_id(connected["id"]))
    assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
    response = await user.client.delete(f"/v1/accounts/{connected['id']}")
    assert response.status_code == 204, response.text

    async def ended() -> bool:
        return (await handle.describe()).status is not WorkflowExecutionStatus.RUNNING

    assert await until(ended, within=10)
    assert (await handle.describe()).status in (
        WorkflowExecutionStatus.CANCELED,
        WorkflowExecutionStatus.COMPLETED,
    )


async def test_a_post_waits_for_its_account_to_be_reconnected_then_publishes_once(
    user: User, sandbox: SandboxAdmin, services: AppServices
) -> None:
    account = await sandbox.create_account("waiting")
    connected = await connect(
        user, account.ig_user_id, await sandbox.issue_token(account.ig_user_id, lifetime="long")
    )
    account_id = connected["id"]
    await sandbox.revoke_token(stored_token(services, account_id))
    response = await schedule(user, account_id, in_seconds=3)
    assert response.status_code == 201, response.text
    post_id = response.json()["id"]

    async def waiting() -> dict[str, Any] | None:
        post: dict[str, Any] = (await user.client.get(f"/v1/posts/{post_id}")).json()
        live = post.get("live") or {}
        return post if live.get("step") == "waiting for reconnect" else None

    post = await until(waiting, within=30)
    assert post is not None, "the post did not wait for its account"
    assert post["status"] == "scheduled"
    assert (await detail(user, account_id))["status"] == "needs_reconnect"
    await asyncio.sleep(2)  # past its time: still waiting, not failed
    assert (await user.client.get(f"/v1/posts/{post_id}")).json()["status"] == "scheduled"
    assert await sandbox.published(account.ig_user_id) == []

    fresh = await sandbox.issue_token(account.ig_user_id, lifetime="long")
    await connect(user, account.ig_user_id, fresh, expected=200)

    async def published() -> bool:
        return bool((await user.client.get(f"/v1/posts/{post_id}")).json()["status"] == "published")

    assert await until(published, within=30)
    assert len(await sandbox.published(account.ig_user_id)) == 1
    messages = [
        event["message"] for event in (await user.client.get(f"/v1/posts/{post_id}")).json()["events"]
    ]
    assert any(message.startswith("waiting for the account to be reconnected") for message in messages)
    assert any(message.startswith("resumed: the account was reconnected") for message in messages)


async def test_a_post_due_after_its_token_would_have_expired_twice_publishes(
    user: User, sandbox: SandboxAdmin, services: AppServices
) -> None:
    # The issue's "a post 90 days ahead on a 60-day token", with the sandbox's tokens living 8 s: the post is due
    # 2.5 lifetimes after the token it was scheduled with, which the sandbox refuses by then.
    account = await sandbox.create_account("far_ahead")
    connected = await connect(
        user, account.ig_user_id, await sandbox.issue_token(account.ig_user_id, lifetime="short")
    )
    account_id = connected["id"]
    first = stored_token(services, account_id)
    response = await schedule(user, account_id, in_seconds=2.5 * TOKEN_LIFETIME.total_seconds())
    assert response.status_code == 201, response.text
    post_id = response.json()["id"]

    async def published() -> bool:
        return bool((await user.client.get(f"/v1/posts/{post_id}")).json()["status"] == "published")

    assert await until(published, within=60)
    assert len(await sandbox.published(account.ig_user_id)) == 1
    assert stored_token(services, account_id) != first
    body = await detail(user, account_id)
    # "expiring" may show for the moment between a refresh being due and being done (every 4 s here).
    assert body["status"] in {"active", "expiring"}, body
    assert len([event for event in body["events"] if event["kind"] == "token_refreshed"]) >= 2

    async def active() -> bool:
        return bool((await detail(user, account_id))["status"] == "active")

    assert await until(active, within=TOKEN_LIFETIME.total_seconds())
