"""GraphClient against the sandbox, endpoint by endpoint, checked against the sandbox's ground truth."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from chronogram.instagram import (
    CarouselImageItemSpec,
    CarouselSpec,
    CarouselVideoItemSpec,
    ContainerStatusCode,
    GraphAuthError,
    GraphClient,
    GraphInvalidRequestError,
    GraphTransientError,
    ImageSpec,
    MediaProductType,
    MediaType,
    ReelSpec,
    StorySpec,
    UserTag,
)
from chronogram.settings import Settings
from sandbox.admin_client import SandboxAccount, SandboxAdmin
from sandbox.config import DEMO_ACCESS_TOKEN, DEMO_IG_USER_ID, DEMO_USERNAME
from tests.graph.conftest import API_VERSION
from tests.graph.helpers import wait_for_status
from tests.support.media_server import StandardMedia


async def publish_image(graph: GraphClient, account: SandboxAccount, image_url: str, caption: str) -> str:
    container = await graph.create_container(
        ig_user_id=account.ig_user_id,
        spec=ImageSpec(image_url, caption=caption),
        access_token=account.access_token,
    )
    await wait_for_status(graph, container.id, account.access_token)
    published = await graph.publish(
        ig_user_id=account.ig_user_id, container_id=container.id, access_token=account.access_token
    )
    return published.id


async def test_image_post_round_trip(
    graph: GraphClient, admin: SandboxAdmin, media: StandardMedia, account: SandboxAccount
) -> None:
    spec = ImageSpec(
        media.portrait,
        caption="Autumn menu is here #food @chef.jo",
        location_id="213385402",
        user_tags=(UserTag("chef.jo", 0.25, 0.75),),
        alt_text="A bowl of pumpkin soup",
        collaborators=("partner_cafe",),
    )
    token = account.access_token
    container = await graph.create_container(ig_user_id=account.ig_user_id, spec=spec, access_token=token)
    status = await wait_for_status(graph, container.id, token)
    assert status.is_finished and status.error() is None

    published = await graph.publish(
        ig_user_id=account.ig_user_id, container_id=container.id, access_token=token
    )
    assert published.id != container.id
    assert (await graph.get_container(container_id=container.id, access_token=token)).is_published

    read = await graph.get_media(media_id=published.id, access_token=token)
    assert read.id == published.id
    assert read.media_type == MediaType.IMAGE
    assert read.media_product_type == MediaProductType.FEED
    assert read.permalink == f"https://www.instagram.com/p/{read.shortcode}/"
    assert read.caption == spec.caption
    assert read.timestamp is not None and abs(read.timestamp - datetime.now(UTC)) < timedelta(minutes=1)

    [truth] = await admin.published(account.ig_user_id)
    assert truth["id"] == published.id
    assert truth["media_url"] == media.portrait
    assert truth["location_id"] == "213385402"
    assert truth["user_tags"] == [{"username": "chef.jo", "x": 0.25, "y": 0.75}]
    assert truth["alt_text"] == "A bowl of pumpkin soup"
    assert truth["collaborators"] == ["partner_cafe"]
    assert truth["media_info"]["format"] == "JPEG"


async def test_reel_with_cover_and_feed_choice(
    graph: GraphClient, admin: SandboxAdmin, media: StandardMedia, account: SandboxAccount
) -> None:
    token = account.access_token
    spec = ReelSpec(
        media.video,
        caption="Behind the scenes",
        share_to_feed=False,
        cover_url=media.tall,
        thumb_offset_ms=1500,
        user_tags=(UserTag("chef.jo"),),
    )
    container = await graph.create_container(ig_user_id=account.ig_user_id, spec=spec, access_token=token)
    await wait_for_status(graph, container.id, token)
    published = await graph.publish(
        ig_user_id=account.ig_user_id, container_id=container.id, access_token=token
    )

    read = await graph.get_media(media_id=published.id, access_token=token)
    assert (read.media_type, read.media_product_type) == (MediaType.VIDEO, MediaProductType.REELS)
    assert read.permalink is not None and "/reel/" in read.permalink
    [truth] = await admin.published(account.ig_user_id)
    assert truth["cover_url"] == media.tall
    assert truth["thumb_offset"] == 1500
    assert truth["share_to_feed"] is False
    assert truth["user_tags"] == [{"username": "chef.jo"}]
    assert truth["media_info"]["format"] == "MP4"


@pytest.mark.parametrize("kind", ["image", "video"])
async def test_stories(
    graph: GraphClient, admin: SandboxAdmin, media: StandardMedia, account: SandboxAccount, kind: str
) -> None:
    token = account.access_token
    # 9:16 is refused in the feed but is the recommended story shape.
    spec = StorySpec(image_url=media.tall) if kind == "image" else StorySpec(video_url=media.video)
    container = await graph.create_container(ig_user_id=account.ig_user_id, spec=spec, access_token=token)
    await wait_for_status(graph, container.id, token)
    published = await graph.publish(
        ig_user_id=account.ig_user_id, container_id=container.id, access_token=token
    )

    read = await graph.get_media(media_id=published.id, access_token=token)
    assert read.media_product_type == MediaProductType.STORY
    assert read.media_type == (MediaType.IMAGE if kind == "image" else MediaType.VIDEO)
    # Meta lists stories on /stories, never on /media.
    assert await graph.list_media(ig_user_id=account.ig_user_id, access_token=token) == []
    assert [m["id"] for m in await admin.published(account.ig_user_id)] == [published.id]


async def test_carousel_of_image_and_video(
    graph: GraphClient, admin: SandboxAdmin, media: StandardMedia, account: SandboxAccount
) -> None:
    token, user = account.access_token, account.ig_user_id
    image_item = await graph.create_container(
        ig_user_id=user,
        spec=CarouselImageItemSpec(
            media.square, user_tags=(UserTag("friend", 0.5, 0.5),), alt_text="Slide one"
        ),
        access_token=token,
    )
    video_item = await graph.create_container(
        ig_user_id=user, spec=CarouselVideoItemSpec(media.video), access_token=token
    )
    for item in (image_item, video_item):
        await wait_for_status(graph, item.id, token)
    parent = await graph.create_container(
        ig_user_id=user,
        spec=CarouselSpec(
            children=(image_item.id, video_item.id),
            caption="Two slides",
            location_id="99",
            collaborators=("a", "b"),
        ),
        access_token=token,
    )
    await wait_for_status(graph, parent.id, token)
    published = await graph.publish(ig_user_id=user, container_id=parent.id, access_token=token)

    read = await graph.get_media(media_id=published.id, access_token=token)
    assert (read.media_type, read.media_product_type) == (MediaType.CAROUSEL_ALBUM, MediaProductType.FEED)
    [truth] = await admin.published(user)
    assert truth["caption"] == "Two slides"
    assert [(c["media_type"], c["media_url"]) for c in truth["children"]] == [
        ("IMAGE", media.square),
        ("VIDEO", media.video),
    ]
    assert truth["children"][0]["alt_text"] == "Slide one"
    assert truth["children"][0]["user_tags"] == [{"username": "friend", "x": 0.5, "y": 0.5}]
    assert truth["collaborators"] == ["a", "b"]
    # One carousel is one post against the quota.
    limit = await graph.get_publishing_limit(ig_user_id=user, access_token=token)
    assert limit.quota_usage == 1


async def test_comments_are_created_and_listed_in_order(
    graph: GraphClient, admin: SandboxAdmin, media: StandardMedia, account: SandboxAccount
) -> None:
    media_id = await publish_image(graph, account, media.square, "Comment on me")
    token = account.access_token
    first = await graph.create_comment(media_id=media_id, message="First comment #tag", access_token=token)
    second = await graph.create_comment(media_id=media_id, message="Second", access_token=token)

    listed = await graph.list_comments(media_id=media_id, access_token=token)
    assert [(c.id, c.text) for c in listed] == [(first.id, "First comment #tag"), (second.id, "Second")]
    assert all(c.timestamp is not None for c in listed)
    [truth] = await admin.published(account.ig_user_id)
    assert [c["text"] for c in truth["comments"]] == ["First comment #tag", "Second"]


async def test_recent_media_newest_first_with_since(
    graph: GraphClient, admin: SandboxAdmin, media: StandardMedia, account: SandboxAccount
) -> None:
    old = await publish_image(graph, account, media.square, "old")
    await admin.advance_clock(3600)
    new = await publish_image(graph, account, media.landscape, "new")
    token = account.access_token

    listed = await graph.list_media(ig_user_id=account.ig_user_id, access_token=token)
    assert [(m.id, m.caption) for m in listed] == [(new, "new"), (old, "old")]
    assert all(m.permalink and m.timestamp for m in listed)
    assert listed[0].timestamp is not None
    since = listed[0].timestamp - timedelta(minutes=5)
    assert [
        m.id for m in await graph.list_media(ig_user_id=account.ig_user_id, access_token=token, since=since)
    ] == [new]


async def test_publishing_limit_counts_the_rolling_window(
    graph: GraphClient, admin: SandboxAdmin, media: StandardMedia
) -> None:
    account = await admin.create_account("limited", quota_total=25)
    token = account.access_token
    limit = await graph.get_publishing_limit(ig_user_id=account.ig_user_id, access_token=token)
    assert (limit.quota_usage, limit.quota_total, limit.quota_duration, limit.remaining) == (
        0,
        25,
        timedelta(days=1),
        25,
    )
    await publish_image(graph, account, media.square, "one")
    await publish_image(graph, account, media.square, "two")
    assert (
        await graph.get_publishing_limit(ig_user_id=account.ig_user_id, access_token=token)
    ).remaining == 23
    await admin.advance_clock(86400 + 1)
    assert (
        await graph.get_publishing_limit(ig_user_id=account.ig_user_id, access_token=token)
    ).quota_usage == 0


async def test_account_info_for_a_token(graph: GraphClient, account: SandboxAccount) -> None:
    me = await graph.get_account(access_token=account.access_token)
    assert (me.id, me.username) == (account.ig_user_id, "chronogram_test")
    by_id = await graph.get_account(access_token=account.access_token, ig_user_id=account.ig_user_id)
    assert by_id == me
    demo = await graph.get_account(access_token=DEMO_ACCESS_TOKEN)
    assert (demo.id, demo.username) == (DEMO_IG_USER_ID, DEMO_USERNAME)
    # 100/33: Meta's "does not exist or missing permissions". Transient by classification (Meta has
    # returned it during incidents), so the caller escalates to "reconnect" after a few attempts.
    with pytest.raises(GraphTransientError) as excinfo:
        await graph.get_account(access_token=account.access_token, ig_user_id=DEMO_IG_USER_ID)
    assert (excinfo.value.code, excinfo.value.subcode) == (100, 33)
    with pytest.raises(GraphAuthError):
        await graph.get_account(access_token="not-a-token")


async def test_token_refresh(
    graph: GraphClient, admin: SandboxAdmin, caplog: pytest.LogCaptureFixture
) -> None:
    account = await admin.create_account("refresher", token_expires_in_seconds=60 * 86400)
    with pytest.raises(GraphInvalidRequestError):
        # Meta only refreshes tokens that are at least 24 hours old.
        await graph.refresh_access_token(access_token=account.access_token)
    await admin.advance_clock(25 * 3600)
    with caplog.at_level(logging.DEBUG):
        grant = await graph.refresh_access_token(access_token=account.access_token)
    assert grant.access_token != account.access_token
    assert grant.token_type == "bearer"
    assert grant.expires_in == timedelta(days=60)
    assert grant.access_token not in repr(grant)
    assert account.access_token not in caplog.text
    assert "graph GET refresh_access_token -> 200" in caplog.text  # logged, without the URL or its token
    me = await graph.get_account(access_token=grant.access_token)
    assert me.id == account.ig_user_id


async def test_wire_paths_versions_and_no_tokens_in_the_call_log(
    graph: GraphClient, admin: SandboxAdmin, media: StandardMedia, account: SandboxAccount
) -> None:
    await publish_image(graph, account, media.square, "logged")
    calls = await admin.calls(ig_user_id=account.ig_user_id)
    assert [c["endpoint"] for c in calls][:2] == ["media_create", "container_status"]
    assert calls[-1]["endpoint"] == "media_publish"
    assert all(c["path"].startswith(f"/{API_VERSION}/") for c in calls)
    assert all(account.access_token not in str(c) for c in calls)
    assert calls[0]["params"]["image_url"] == media.square
    assert [c["seq"] for c in calls] == sorted(c["seq"] for c in calls)


async def test_client_from_settings(
    http: httpx.AsyncClient, sandbox_url: str, account: SandboxAccount
) -> None:
    settings = Settings(graph_api_base_url=sandbox_url + "/", graph_api_version="v26.0")
    graph = GraphClient.from_settings(http, settings)
    assert repr(graph) == f"GraphClient(base_url={sandbox_url!r}, api_version='v26.0')"
    assert (await graph.get_account(access_token=account.access_token)).id == account.ig_user_id
    with pytest.raises(ValueError):
        GraphClient(http, base_url=sandbox_url, api_version="25")


async def test_container_status_reports_in_progress(
    graph: GraphClient, admin: SandboxAdmin, media: StandardMedia
) -> None:
    account = await admin.create_account("slowpoke", image_processing_seconds=30)
    token = account.access_token
    container = await graph.create_container(
        ig_user_id=account.ig_user_id, spec=ImageSpec(media.square), access_token=token
    )
    status = await graph.get_container(container_id=container.id, access_token=token)
    assert status.status_code is ContainerStatusCode.IN_PROGRESS
    await admin.advance_clock(30)
    assert (await graph.get_container(container_id=container.id, access_token=token)).is_finished
