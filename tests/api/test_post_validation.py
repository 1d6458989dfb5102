"""POST /v1/posts refuses, up front and field by field, everything Instagram would reject at publish time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from sandbox.admin_client import SandboxAdmin
from tests.api.helpers import ApiUser, assert_problem, at, connect, schedule, upload_ok
from tests.support.media import jpeg, video


@dataclass(frozen=True)
class Kit:
    account_id: int
    square: int
    square2: int
    tall: int  # 1080x2000: fine for a story, too tall for the feed
    video: int


@pytest_asyncio.fixture
async def kit(alice: ApiUser, sandbox: SandboxAdmin) -> Kit:
    account = await connect(alice.client, sandbox)
    return Kit(
        account_id=account["id"],
        square=await upload_ok(alice.client, jpeg(1080, 1080)),
        square2=await upload_ok(alice.client, jpeg(1080, 1080, color=(200, 10, 10))),
        tall=await upload_ok(alice.client, jpeg(1080, 2000)),
        video=await upload_ok(alice.client, video(4.0, width=240, height=240)),
    )


def _media(kit: Kit, names: str) -> list[int]:
    return [getattr(kit, name) for name in names.split()]


TAG = {"username": "friend", "x": 0.5, "y": 0.5}

REFUSED: list[tuple[str, str, dict[str, Any], str, str]] = [
    # type, media, extra fields -> code, field
    ("IMAGE", "square square2", {}, "media_count", "media_ids"),
    ("CAROUSEL", "square", {}, "media_count", "media_ids"),
    ("REELS", "video video", {}, "media_count", "media_ids"),
    ("STORIES", "square square2", {"caption": None}, "media_count", "media_ids"),
    ("REELS", "square", {}, "reels_need_video", "media_ids[0]"),
    ("IMAGE", "video", {}, "video_not_allowed", "media_ids[0]"),
    ("IMAGE", "tall", {}, "image_aspect_ratio", "media_ids[0]"),
    ("CAROUSEL", "square tall", {}, "image_aspect_ratio", "media_ids[1]"),
    ("IMAGE", "square", {"caption": "#tag " * 31}, "too_many_hashtags", "caption"),
    ("IMAGE", "square", {"caption": "@someone " * 21}, "too_many_mentions", "caption"),
    ("IMAGE", "square", {"first_comment": "#t " * 31}, "too_many_hashtags", "first_comment"),
    ("STORIES", "square", {"caption": "hi"}, "not_allowed_for_type", "caption"),
    ("STORIES", "square", {"caption": None, "first_comment": "hi"}, "not_allowed_for_type", "first_comment"),
    ("STORIES", "square", {"caption": None, "location_id": "123"}, "not_allowed_for_type", "location_id"),
    ("REELS", "video", {"alt_text": "a clip"}, "not_allowed_for_type", "alt_text"),
    ("CAROUSEL", "square square2", {"alt_text": "two"}, "not_allowed_for_type", "alt_text"),
    ("IMAGE", "square", {"reel_options": {"share_to_feed": True}}, "not_allowed_for_type", "reel_options"),
    ("IMAGE", "square", {"items": [{"alt_text": "x"}]}, "not_allowed_for_type", "items"),
    ("CAROUSEL", "square square2", {"items": [{"alt_text": "x"}]}, "items_length_mismatch", "items"),
    ("CAROUSEL", "square square2", {"user_tags": [TAG]}, "not_allowed_for_type", "user_tags"),
    (
        "IMAGE",
        "square",
        {"user_tags": [{"username": "friend"}]},
        "user_tag_position_required",
        "user_tags[0]",
    ),
    ("REELS", "video", {"user_tags": [TAG]}, "user_tag_position_not_allowed", "user_tags[0]"),
    (
        "CAROUSEL",
        "square video",
        {"items": [{"user_tags": [{"username": "a"}]}, {}]},
        "user_tag_position_required",
        "items[0].user_tags[0]",
    ),
    (
        "CAROUSEL",
        "square video",
        {"items": [{}, {"alt_text": "clip"}]},
        "not_allowed_for_type",
        "items[1].alt_text",
    ),
]


@pytest.mark.parametrize(("post_type", "media", "extra", "code", "field"), REFUSED)
async def test_publish_rules(
    alice: ApiUser, kit: Kit, post_type: str, media: str, extra: dict[str, Any], code: str, field: str
) -> None:
    response = await schedule(alice.client, kit.account_id, _media(kit, media), type=post_type, **extra)
    body = assert_problem(response, 422, code, field=field)
    assert [error["code"] for error in body["errors"]] == [code]


SCHEMA_REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"caption": "x" * 2201}, "caption"),
    ({"first_comment": "x" * 2201}, "first_comment"),
    ({"media_ids": []}, "media_ids"),
    ({"media_ids": list(range(1, 12))}, "media_ids"),
    ({"user_tags": [TAG] * 21}, "user_tags"),
    ({"user_tags": [{"username": "friend", "x": 1.5, "y": 0}]}, "user_tags[0].x"),
    ({"user_tags": [{"username": "not a username!", "x": 0, "y": 0}]}, "user_tags[0].username"),
    ({"alt_text": "x" * 1001}, "alt_text"),
    ({"location_id": "paris"}, "location_id"),
    ({"publish_at": "2030-01-01T09:00:00"}, "publish_at"),
    ({"publish_at": "tomorrow"}, "publish_at"),
    ({"type": "VIDEO"}, "type"),
    ({"account_id": 0}, "account_id"),
    (
        {"reel_options": {"collaborators": ["a", "b", "c", "d"]}, "type": "REELS"},
        "reel_options.collaborators",
    ),
    ({"reel_options": {"cover_url": "not a url"}, "type": "REELS"}, "reel_options.cover_url"),
    ({"reel_options": {"thumb_offset_ms": -1}, "type": "REELS"}, "reel_options.thumb_offset_ms"),
    ({"reel_options": {"volume": 11}, "type": "REELS"}, "reel_options.volume"),
    ({"hashtags": ["x"]}, "hashtags"),
]


@pytest.mark.parametrize(("extra", "field"), SCHEMA_REFUSED)
async def test_shapes(alice: ApiUser, kit: Kit, extra: dict[str, Any], field: str) -> None:
    body = {"account_id": kit.account_id, "type": "IMAGE", "media_ids": [kit.square], "publish_at": at(3600)}
    response = await alice.client.post("/v1/posts", json=body | extra)
    assert_problem(response, 422, "validation_error", field=field)


async def test_every_violation_is_reported_at_once(alice: ApiUser, kit: Kit) -> None:
    response = await schedule(
        alice.client,
        kit.account_id,
        [kit.tall],
        caption="#a " * 31,
        user_tags=[{"username": "x"}],
        publish_at=at(-3600),
    )
    body = assert_problem(response, 422, "validation_error")
    assert {(e["field"], e["code"]) for e in body["errors"]} == {
        ("media_ids[0]", "image_aspect_ratio"),
        ("caption", "too_many_hashtags"),
        ("user_tags[0]", "user_tag_position_required"),
        ("publish_at", "publish_at_in_past"),
    }


async def test_publish_at_window(alice: ApiUser, kit: Kit) -> None:
    assert_problem(
        await schedule(alice.client, kit.account_id, [kit.square], publish_at=at(-300)),
        422,
        "publish_at_in_past",
        field="publish_at",
    )
    assert_problem(
        await schedule(alice.client, kit.account_id, [kit.square], publish_at=at(181 * 86400)),
        422,
        "publish_at_too_far",
        field="publish_at",
    )
    edge = await schedule(alice.client, kit.account_id, [kit.square], publish_at=at(179 * 86400))
    assert edge.status_code == 201, edge.text
    # Another zone is the same instant.
    local = (datetime.now(UTC) + timedelta(days=2)).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Tokyo"))
    zoned = await schedule(alice.client, kit.account_id, [kit.square], publish_at=local.isoformat())
    assert zoned.status_code == 201, zoned.text
    assert datetime.fromisoformat(zoned.json()["publish_at"]) == local


async def test_publish_at_omitted_means_now(alice: ApiUser, kit: Kit) -> None:
    before = datetime.now(UTC)
    response = await alice.client.post(
        "/v1/posts", json={"account_id": kit.account_id, "type": "IMAGE", "media_ids": [kit.square]}
    )
    assert response.status_code == 201, response.text
    publish_at = datetime.fromisoformat(response.json()["publish_at"])
    assert before <= publish_at <= datetime.now(UTC)


async def test_a_moment_ago_counts_as_now(alice: ApiUser, kit: Kit) -> None:
    response = await schedule(alice.client, kit.account_id, [kit.square], publish_at=at(-5))
    assert response.status_code == 201, response.text
    assert datetime.fromisoformat(response.json()["publish_at"]) >= datetime.now(UTC) - timedelta(seconds=2)


ACCEPTED: list[tuple[str, str, dict[str, Any]]] = [
    (
        "IMAGE",
        "square",
        {"caption": "#tag " * 30 + "@a " * 20, "user_tags": [TAG] * 20, "alt_text": "x" * 1000},
    ),
    ("IMAGE", "square", {"caption": "x" * 2200, "location_id": "110843418940484"}),
    ("STORIES", "tall", {"caption": None, "user_tags": [{"username": "friend"}]}),
    ("STORIES", "video", {"caption": None}),
    (
        "REELS",
        "video",
        {
            "user_tags": [{"username": "friend"}],
            "reel_options": {
                "share_to_feed": True,
                "collaborators": ["a", "b", "c"],
                "thumb_offset_ms": 1000,
            },
        },
    ),
    ("CAROUSEL", " ".join(["square"] * 10), {}),
    (
        "CAROUSEL",
        "square video",
        {"items": [{"alt_text": "one", "user_tags": [TAG]}, {"user_tags": [{"username": "b"}]}]},
    ),
]


@pytest.mark.parametrize(("post_type", "media", "extra"), ACCEPTED)
async def test_accepted(alice: ApiUser, kit: Kit, post_type: str, media: str, extra: dict[str, Any]) -> None:
    response = await schedule(alice.client, kit.account_id, _media(kit, media), type=post_type, **extra)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["type"] == post_type and body["status"] == "scheduled"
    assert [item["media_id"] for item in body["media"]] == _media(kit, media)
    if "items" in extra:
        assert [item["alt_text"] for item in body["media"]] == [
            item.get("alt_text") for item in extra["items"]
        ]


async def test_references_must_be_the_users_own(
    alice: ApiUser, bob: ApiUser, kit: Kit, sandbox: SandboxAdmin
) -> None:
    bobs_account = await connect(bob.client, sandbox)
    bobs_media = await upload_ok(bob.client)
    response = await schedule(alice.client, bobs_account["id"], [kit.square, bobs_media, 987654321])
    body = assert_problem(response, 422, "validation_error")
    assert {(e["field"], e["code"]) for e in body["errors"]} == {
        ("account_id", "unknown_account"),
        ("media_ids[1]", "unknown_media"),
        ("media_ids[2]", "unknown_media"),
    }
    assert str(bobs_account["ig_user_id"]) not in response.text
