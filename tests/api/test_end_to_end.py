"""End to end on the real stack, as a client would: upload, connect, schedule, then reschedule, cancel or publish
now, and check what Instagram (the sandbox's ground truth) really got."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx

from sandbox.admin_client import SandboxAdmin
from tests.api.helpers import ApiUser, at, schedule_ok, wait_for
from tests.support.media import jpeg


async def _setup(client: httpx.AsyncClient, sandbox: SandboxAdmin) -> tuple[int, int, str]:
    """Upload an image and connect a fresh sandbox account, through the API only."""
    upload = await client.post("/v1/media", files={"file": ("bread.jpg", jpeg(1080, 1350), "image/jpeg")})
    assert upload.status_code == 201, upload.text
    account = await sandbox.create_account("e2e_bakery")
    connected = await client.post(
        "/v1/accounts", json={"ig_user_id": account.ig_user_id, "access_token": account.access_token}
    )
    assert connected.status_code == 201, connected.text
    return upload.json()["id"], connected.json()["id"], account.ig_user_id


async def test_schedule_reschedule_and_see_it_published(alice: ApiUser, sandbox: SandboxAdmin) -> None:
    media_id, account_id, ig_user_id = await _setup(alice.client, sandbox)
    created = await schedule_ok(
        alice.client,
        account_id,
        [media_id],
        caption="Fresh bread #bakery",
        first_comment="Open until 6",
        alt_text="A loaf on a board",
        publish_at=at(120),
    )
    post_id = created["id"]

    # Two minutes is too long to wait: bring it forward to a few seconds from now.
    sooner = datetime.now(UTC) + timedelta(seconds=3)
    moved = await alice.client.patch(f"/v1/posts/{post_id}", json={"publish_at": sooner.isoformat()})
    assert moved.status_code == 200, moved.text
    assert datetime.fromisoformat(moved.json()["live"]["publish_at"]) == sooner
    assert await sandbox.published(ig_user_id) == []

    post = await wait_for(alice.client, post_id, "published", within=25)
    assert post["permalink"] and post["permalink"].startswith("https://www.instagram.com/p/")
    assert post["ig_media_id"] and post["published_at"]
    assert datetime.fromisoformat(post["published_at"]) >= sooner
    assert [(e["from_status"], e["to_status"]) for e in post["events"] if e["to_status"]] == [
        (None, "scheduled"),
        ("scheduled", "publishing"),
        ("publishing", "published"),
    ]
    assert any((e["message"] or "").startswith("rescheduled") for e in post["events"])

    truth = await sandbox.published(ig_user_id)
    assert len(truth) == 1
    assert truth[0]["id"] == post["ig_media_id"] and truth[0]["permalink"] == post["permalink"]
    assert truth[0]["caption"] == "Fresh bread #bakery" and truth[0]["alt_text"] == "A loaf on a board"
    for _ in range(50):  # the first comment follows the publish
        truth = await sandbox.published(ig_user_id)
        if truth[0]["comments"]:
            break
        await asyncio.sleep(0.1)
    assert [comment["text"] for comment in truth[0]["comments"]] == ["Open until 6"]


async def test_cancel_end_to_end(alice: ApiUser, sandbox: SandboxAdmin) -> None:
    media_id, account_id, ig_user_id = await _setup(alice.client, sandbox)
    publish_at = datetime.now(UTC) + timedelta(seconds=3)
    created = await schedule_ok(alice.client, account_id, [media_id], publish_at=publish_at.isoformat())
    post_id = created["id"]
    cancelled = await alice.client.post(f"/v1/posts/{post_id}/cancel", json={"reason": "sold out"})
    assert cancelled.status_code == 202, cancelled.text
    post = await wait_for(alice.client, post_id, "cancelled")
    assert post["permalink"] is None

    # Past the time it would have gone out, Instagram still has nothing.
    await asyncio.sleep(max(0.0, (publish_at - datetime.now(UTC)).total_seconds()) + 1)
    assert await sandbox.published(ig_user_id) == []
    assert (await alice.client.get(f"/v1/posts/{post_id}")).json()["status"] == "cancelled"


async def test_publish_now_end_to_end(alice: ApiUser, sandbox: SandboxAdmin) -> None:
    media_id, account_id, ig_user_id = await _setup(alice.client, sandbox)
    created = await schedule_ok(
        alice.client, account_id, [media_id], caption="Now!", publish_at=at(7 * 86400)
    )
    post_id = created["id"]
    response = await alice.client.post(f"/v1/posts/{post_id}/publish-now")
    assert response.status_code == 202, response.text
    post = await wait_for(alice.client, post_id, "published")
    assert post["permalink"]
    events = [e["message"] for e in post["events"]]
    assert "publish-now requested" in events
    truth = await sandbox.published(ig_user_id)
    assert [item["caption"] for item in truth] == ["Now!"]
    assert truth[0]["permalink"] == post["permalink"]


async def test_a_post_published_now_is_listed_when_it_went_out(alice: ApiUser, sandbox: SandboxAdmin) -> None:
    media_id, account_id, _ig_user_id = await _setup(alice.client, sandbox)
    created = await schedule_ok(alice.client, account_id, [media_id], publish_at=at(7 * 86400))
    asked_at = datetime.now(UTC)
    response = await alice.client.post(f"/v1/posts/{created['id']}/publish-now")
    assert response.status_code == 202, response.text
    post = await wait_for(alice.client, created["id"], "published")
    publish_at = datetime.fromisoformat(post["publish_at"])
    assert asked_at - timedelta(seconds=1) <= publish_at <= datetime.fromisoformat(post["published_at"])

    def listed(start: datetime, end: datetime) -> dict[str, str]:
        return {"from": start.isoformat(), "to": end.isoformat()}

    around_now = await alice.client.get(
        "/v1/posts", params=listed(asked_at - timedelta(minutes=1), datetime.now(UTC))
    )
    assert created["id"] in [item["id"] for item in around_now.json()["data"]]
    next_week = datetime.now(UTC) + timedelta(days=7)
    at_the_old_time = await alice.client.get(
        "/v1/posts", params=listed(next_week - timedelta(hours=1), next_week + timedelta(hours=1))
    )
    assert created["id"] not in [item["id"] for item in at_the_old_time.json()["data"]]
