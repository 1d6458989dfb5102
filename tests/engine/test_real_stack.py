"""Posts due a few seconds ahead publish on the real stack (dev server, MinIO, Graph API sandbox, SQLite) with the
right content, checked against the sandbox's ground truth of what Instagram would show."""

from __future__ import annotations

import asyncio
import base64
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, select
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer

from chronogram.contracts import post_workflow_id
from chronogram.db import make_engine
from chronogram.enums import EventKind, PostStatus, PostType
from chronogram.models import Post, PostEvent
from chronogram.settings import Settings
from chronogram.temporal import DATA_CONVERTER
from sandbox.admin_client import SandboxAccount, SandboxAdmin
from tests.engine.conftest import start_seeded
from tests.support.factories import PostSeed, Seeder
from tests.support.media import Upload
from workflows import ScheduledPostWorkflow

pytestmark = pytest.mark.usefixtures("in_process_worker")

LEAD = timedelta(seconds=4)


async def publish(
    client: Client, seeder: Seeder, account: tuple[SandboxAccount, int], seed: PostSeed
) -> tuple[int, dict[str, Any]]:
    post_id, handle = await start_seeded(client, seeder, account, seed)
    result = await asyncio.wait_for(handle.result(), timeout=60)
    assert result.status is PostStatus.PUBLISHED
    return post_id, result.__dict__


async def only_published(admin: SandboxAdmin, account: tuple[SandboxAccount, int]) -> dict[str, Any]:
    published = await admin.published(account[0].ig_user_id)
    assert len(published) == 1, f"expected exactly one published media, got {len(published)}"
    return published[0]


async def assert_history_replays_without_secrets(client: Client, post_id: int, token: str) -> None:
    """The real run's history replays with the production converter and holds no trace of the token."""
    history = await client.get_workflow_handle(post_workflow_id(post_id)).fetch_history()
    await Replayer(workflows=[ScheduledPostWorkflow], data_converter=DATA_CONVERTER).replay_workflow(history)
    raw = history.to_json()
    decoded = "".join(
        base64.b64decode(match).decode("utf-8", "replace")
        for match in re.findall(r'"data":\s*"([A-Za-z0-9+/=]+)"', raw)
    )
    assert "chronogram_friend" in decoded or "publish_at" in decoded  # the scan really sees inside payloads
    assert token not in raw and token not in decoded


def assert_punctual(published: dict[str, Any], publish_at: datetime) -> None:
    lag = datetime.fromisoformat(published["published_at"]) - publish_at
    assert timedelta(0) <= lag < timedelta(seconds=1), (
        f"published {lag.total_seconds():.3f} s after publish_at"
    )


async def test_image_post(
    engine_client: Client, seeder: Seeder, ig_account, sandbox_admin: SandboxAdmin, engine_settings: Settings
) -> None:
    publish_at = datetime.now(UTC) + LEAD
    seed = PostSeed(
        PostType.IMAGE,
        [Upload.jpeg(1080, 1350)],
        publish_at,
        location_id="110123456789",
        user_tags=[{"username": "chronogram_friend", "x": 0.25, "y": 0.75}],
        alt_text="A blue square",
    )
    post_id, result = await publish(engine_client, seeder, ig_account, seed)

    published = await only_published(sandbox_admin, ig_account)
    assert published["media_type"] == "IMAGE"
    assert published["caption"] == seed.caption
    assert published["location_id"] == "110123456789"
    assert [(t["username"], t["x"], t["y"]) for t in published["user_tags"]] == [
        ("chronogram_friend", 0.25, 0.75)
    ]
    assert published["alt_text"] == "A blue square"
    assert [c["text"] for c in published["comments"]] == [seed.first_comment]
    assert published["id"] == result["media_id"] and published["permalink"] == result["permalink"]
    assert_punctual(published, publish_at)
    await assert_history_replays_without_secrets(engine_client, post_id, ig_account[0].access_token)

    with Session(make_engine(engine_settings.database_url)) as session:
        post = session.get(Post, post_id)
        assert post is not None
        assert (post.status, post.ig_media_id, post.permalink) == (
            PostStatus.PUBLISHED,
            published["id"],
            published["permalink"],
        )
        assert post.ig_first_comment_id == published["comments"][0]["id"]
        transitions = session.exec(
            select(PostEvent.to_status).where(
                PostEvent.post_id == post_id, PostEvent.kind == EventKind.TRANSITION
            )
        ).all()
        assert [t for t in transitions if t] == [PostStatus.PUBLISHING, PostStatus.PUBLISHED]


async def test_carousel_with_images_and_a_video(
    engine_client: Client, seeder: Seeder, ig_account, sandbox_admin: SandboxAdmin
) -> None:
    # Made before the clock starts: encoding the video takes a fraction of the lead.
    media = [Upload.jpeg(1080, 1080), Upload.mp4(), Upload.jpeg(1080, 1080, (200, 30, 30))]
    publish_at = datetime.now(UTC) + LEAD
    seed = PostSeed(
        PostType.CAROUSEL,
        media,
        publish_at,
        location_id="220",
    )
    await publish(engine_client, seeder, ig_account, seed)

    published = await only_published(sandbox_admin, ig_account)
    assert published["media_type"] == "CAROUSEL_ALBUM"
    assert [child["media_type"] for child in published["children"]] == ["IMAGE", "VIDEO", "IMAGE"]
    assert published["caption"] == seed.caption and published["location_id"] == "220"
    assert [c["text"] for c in published["comments"]] == [seed.first_comment]
    assert_punctual(published, publish_at)


async def test_reel(engine_client: Client, seeder: Seeder, ig_account, sandbox_admin: SandboxAdmin) -> None:
    clip = Upload.mp4(duration_ms=12_000)
    publish_at = datetime.now(UTC) + LEAD
    seed = PostSeed(PostType.REELS, [clip], publish_at, reel_options={"share_to_feed": True})
    await publish(engine_client, seeder, ig_account, seed)

    published = await only_published(sandbox_admin, ig_account)
    assert (published["media_type"], published["media_product_type"]) == ("VIDEO", "REELS")
    assert published["share_to_feed"] in (True, "true")
    assert published["caption"] == seed.caption
    assert_punctual(published, publish_at)


async def test_story(engine_client: Client, seeder: Seeder, ig_account, sandbox_admin: SandboxAdmin) -> None:
    publish_at = datetime.now(UTC) + LEAD
    seed = PostSeed(PostType.STORIES, [Upload.jpeg(1080, 1920)], publish_at, caption=None, first_comment=None)
    await publish(engine_client, seeder, ig_account, seed)

    published = await only_published(sandbox_admin, ig_account)
    assert published["media_product_type"] == "STORY"
    assert published["comments"] == []
    assert_punctual(published, publish_at)


async def test_rejected_media_fails_the_post_with_a_reason(
    engine_client: Client, seeder: Seeder, ig_account, sandbox_admin: SandboxAdmin, engine_settings: Settings
) -> None:
    # 1:2 portrait is outside Instagram's 4:5..1.91:1 for a feed image: the user is told what to change.
    # Due in five minutes: inside the preparation window, so the media is checked now, not at publish time.
    seed = PostSeed(PostType.IMAGE, [Upload.jpeg(500, 1000)], datetime.now(UTC) + timedelta(minutes=5))
    post_id, handle = await start_seeded(engine_client, seeder, ig_account, seed)
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), timeout=30)
    assert isinstance(failure.value.cause, ApplicationError) and failure.value.cause.type == "MediaRejected"
    with Session(make_engine(engine_settings.database_url)) as session:
        post = session.get(Post, post_id)
        assert post is not None and post.status is PostStatus.FAILED
        assert post.error_code == "MediaRejected"
        assert (
            post.error_message and "aspect ratio" in post.error_message and "media #1" in post.error_message
        )
    assert await sandbox_admin.published(ig_account[0].ig_user_id) == []
    state = await handle.query(ScheduledPostWorkflow.state)
    assert state.status is PostStatus.FAILED
