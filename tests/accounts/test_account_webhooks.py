"""The delay and account events on the real stack, as a client's webhook receiver sees them (it verifies every
signature with the standardwebhooks library, tests/support/receiver.py): exactly one post.delayed per delay
whose end the post's next event tells (data.resumed), for an outage and for a refused token; one
account.needs_reconnect when the token is refused; one account.token_refreshed per refresh, never with a token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from api.deps import AppServices
from sandbox.admin_client import SandboxAdmin
from tests.accounts.conftest import User
from tests.accounts.test_token_lifecycle import connect, detail, schedule, stored_token, until
from tests.support.receiver import Received, WebhookReceiver, webhook_receiver

POST_TYPES = [
    "post.scheduled",
    "post.rescheduled",
    "post.cancelled",
    "post.publishing",
    "post.published",
    "post.failed",
    "post.delayed",
    "post.first_comment_failed",
]
ACCOUNT_TYPES = ["account.needs_reconnect", "account.token_refreshed"]
# Outlasts a call's first retries (about 30 s, tests/engine/test_outages.py), so that the post is delayed.
OUTAGE_SECONDS = 45.0


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with webhook_receiver() as running:
        yield running


async def subscribe(user: User, receiver: WebhookReceiver) -> None:
    response = await user.client.post(
        "/v1/webhooks", json={"url": receiver.url, "event_types": POST_TYPES + ACCOUNT_TYPES}
    )
    assert response.status_code == 201, response.text
    receiver.secrets.append(response.json()["secret"])


def events_of(receiver: WebhookReceiver, *, post_id: int | None = None, type: str | None = None) -> list[Any]:
    """Each event once (a receiver drops duplicates by webhook-id), in arrival order."""
    seen: set[str] = set()
    found = []
    for received in receiver.accepted():
        payload = received.payload
        if received.webhook_id in seen:
            continue
        seen.add(received.webhook_id)
        if post_id is not None and payload["data"].get("post_id") != post_id:
            continue
        if type is not None and payload["type"] != type:
            continue
        found.append(payload)
    return found


def assert_clean(receiver: WebhookReceiver, *tokens: str) -> None:
    received: list[Received] = receiver.received
    assert received and all(r.verified for r in received)
    for r in received:
        body = r.body.decode()
        assert "access_token" not in body and all(token not in body for token in tokens)


def assert_one_delay_then_published(events: list[Any], reason: str) -> None:
    types = [e["type"] for e in events]
    assert types.count("post.delayed") == 1, types
    assert types[0] == "post.scheduled" and types[-1] == "post.published", types
    assert [e["data"]["sequence"] for e in events] == list(range(1, len(events) + 1))
    at = types.index("post.delayed")
    delayed = events[at]["data"]
    assert delayed["delay"]["reason"] == reason and delayed["delay"]["deadline"]
    assert delayed["error"]["what_to_do"] and delayed["resumed"] is None
    after = events[at + 1]["data"]
    assert after["resumed"] is not None, types
    assert after["resumed"]["delayed_since"] == delayed["delay"]["since"]
    assert after["resumed"]["delayed_seconds"] > 0
    assert all(e["data"]["resumed"] is None for i, e in enumerate(events) if i != at + 1)


async def published(user: User, post_id: int) -> bool:
    return bool((await user.client.get(f"/v1/posts/{post_id}")).json()["status"] == "published")


async def test_an_outage_delays_a_post_once_then_it_publishes(
    user: User, sandbox: SandboxAdmin, services: AppServices, receiver: WebhookReceiver
) -> None:
    await subscribe(user, receiver)
    account = await sandbox.create_account("outage")
    connected = await connect(user, account.ig_user_id, account.access_token)
    await sandbox.start_outage(seconds=OUTAGE_SECONDS, ig_user_id=account.ig_user_id)
    response = await schedule(user, connected["id"], in_seconds=20)
    assert response.status_code == 201, response.text
    post_id = response.json()["id"]

    assert await until(lambda: published(user, post_id), within=OUTAGE_SECONDS + 90)
    await receiver.wait_for(lambda r: "post.published" in r.types(post_id), within=20)
    await asyncio.sleep(1.0)  # nothing more comes
    assert_one_delay_then_published(events_of(receiver, post_id=post_id), "service_unavailable")
    assert not events_of(receiver, type="account.needs_reconnect")  # an outage is no refusal
    assert_clean(receiver, account.access_token, stored_token(services, connected["id"]))


async def test_a_refused_token_delays_a_post_until_the_reconnect(
    user: User, sandbox: SandboxAdmin, services: AppServices, receiver: WebhookReceiver
) -> None:
    await subscribe(user, receiver)
    account = await sandbox.create_account("refused")
    first = await sandbox.issue_token(account.ig_user_id, lifetime="long")
    connected = await connect(user, account.ig_user_id, first)
    account_id = connected["id"]
    revoked = stored_token(services, account_id)
    await sandbox.revoke_token(revoked)
    response = await schedule(user, account_id, in_seconds=3)
    assert response.status_code == 201, response.text
    post_id = response.json()["id"]

    await receiver.wait_for(lambda r: "post.delayed" in r.types(post_id), within=30)
    assert (await detail(user, account_id))["status"] == "needs_reconnect"
    fresh = await sandbox.issue_token(account.ig_user_id, lifetime="long")
    await connect(user, account.ig_user_id, fresh, expected=200)

    assert await until(lambda: published(user, post_id), within=30)
    await receiver.wait_for(lambda r: "post.published" in r.types(post_id), within=20)
    await asyncio.sleep(1.0)
    assert_one_delay_then_published(events_of(receiver, post_id=post_id), "account_needs_reconnect")
    needs = events_of(receiver, type="account.needs_reconnect")
    assert len(needs) == 1, needs
    data = needs[0]["data"]
    assert data["account_id"] == account_id and data["status"] == "needs_reconnect"
    assert data["reason"] == "token_invalid" and "Reconnect" in data["error"]["what_to_do"]
    assert_clean(receiver, first, revoked, fresh, stored_token(services, account_id))


async def test_each_token_refresh_is_one_event(
    user: User, sandbox: SandboxAdmin, services: AppServices, receiver: WebhookReceiver
) -> None:
    await subscribe(user, receiver)
    account = await sandbox.create_account("refreshed")
    short = await sandbox.issue_token(account.ig_user_id, lifetime="short")
    connected = await connect(user, account.ig_user_id, short)
    account_id = connected["id"]

    async def refreshed() -> bool:
        kinds = [e["kind"] for e in (await detail(user, account_id))["events"]]
        return kinds.count("token_refreshed") >= 2

    assert await until(refreshed, within=30)
    body = await detail(user, account_id)
    refreshes = [e for e in body["events"] if e["kind"] == "token_refreshed"]

    def told(r: WebhookReceiver) -> bool:
        return len(events_of(r, type="account.token_refreshed")) >= len(refreshes)

    await receiver.wait_for(told, within=20)
    sent = events_of(receiver, type="account.token_refreshed")[: len(refreshes)]
    # One event per refresh, in order, each with the new expiry (the account's, never its token).
    assert [e["data"]["token_expires_at"] for e in sent] == [
        e["token_expires_at"].replace("+00:00", "Z") for e in refreshes
    ]
    assert all(e["data"]["account_id"] == account_id and e["data"]["status"] == "active" for e in sent)
    assert all(e["data"]["username"] == account.username for e in sent)
    assert not events_of(receiver, type="account.needs_reconnect")
    assert_clean(receiver, short, stored_token(services, account_id))
