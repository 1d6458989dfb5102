"""chronogram.post_rules on its own: counting as Instagram counts, and the publish-time window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chronogram.contracts import MediaKind
from chronogram.enums import PostType
from chronogram.post_rules import (
    MediaFacts,
    PostContent,
    post_violations,
    publish_at_violation,
    text_violations,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
WINDOW = {"horizon": timedelta(days=180), "past_tolerance": timedelta(seconds=60)}
IMAGE = MediaFacts(kind=MediaKind.IMAGE, size_bytes=1000, width=1080, height=1080)


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("#a " * 30, []),
        ("#a " * 31, ["too_many_hashtags"]),
        ("price#1 " * 40, []),  # not a hashtag: it does not start a word
        ("@a " * 20, []),
        ("@a.b " * 21, ["too_many_mentions"]),
        ("mail me: x@y.z " * 30, []),
        ("é" * 2200, []),
        ("é" * 2201, ["text_too_long"]),
    ],
)
def test_text_limits(text: str, codes: list[str]) -> None:
    assert [violation.code for violation in text_violations(text, "caption")] == codes


@pytest.mark.parametrize(
    ("offset", "code"),
    [
        (timedelta(seconds=-59), None),
        (timedelta(seconds=-61), "publish_at_in_past"),
        (timedelta(days=180), None),
        (timedelta(days=180, seconds=1), "publish_at_too_far"),
    ],
)
def test_publish_window(offset: timedelta, code: str | None) -> None:
    found = publish_at_violation(NOW + offset, now=NOW, **WINDOW)
    assert (found.code if found else None) == code


def test_naive_times_are_refused() -> None:
    found = publish_at_violation(datetime(2026, 6, 2, 9, 0), now=NOW, **WINDOW)
    assert found is not None and found.code == "timezone_required"


def test_stories_have_no_aspect_ratio_rule_but_feed_images_do() -> None:
    tall = MediaFacts(kind=MediaKind.IMAGE, size_bytes=1000, width=1080, height=1920)
    assert post_violations(PostContent(post_type=PostType.STORIES), [tall]) == []
    assert [v.code for v in post_violations(PostContent(post_type=PostType.IMAGE), [tall])] == [
        "image_aspect_ratio"
    ]


def test_video_size_limits_depend_on_the_type() -> None:
    video = MediaFacts(kind=MediaKind.VIDEO, size_bytes=150 * 1024 * 1024)
    assert post_violations(PostContent(post_type=PostType.REELS), [video]) == []
    story = post_violations(PostContent(post_type=PostType.STORIES), [video])
    assert [v.code for v in story] == ["video_too_large"]


def test_carousel_items_are_judged_by_their_own_media() -> None:
    video = MediaFacts(kind=MediaKind.VIDEO, size_bytes=1000)
    content = PostContent(
        post_type=PostType.CAROUSEL,
        items=[
            {"user_tags": [{"username": "a", "x": 0.1, "y": 0.2}]},
            {"user_tags": [{"username": "b", "x": 0.5}]},
        ],
    )
    assert [(v.field, v.code) for v in post_violations(content, [IMAGE, video])] == [
        ("items[1].user_tags[0]", "user_tag_position_not_allowed")
    ]
