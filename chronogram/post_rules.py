"""Instagram's rules for a post as a whole (reference §5), checked when a post is created or edited.

chronogram.media_rules judges one file; these rules judge what a publish would reject about the post around it:
how many media of which kind each type takes, caption limits, which options a type accepts, and when it may be
published. Pure functions: every violation names the offending field and has a stable code, so the HTTP API can
report all of them at once and a command-line tool could reuse them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chronogram.contracts import MediaKind
from chronogram.enums import PostType
from chronogram.media_rules import (
    MediaRejected,
    VideoFacts,
    check_aspect_ratio,
    thumb_offset_problem,
    video_problems,
)

MAX_CAPTION_CHARS = 2200
MAX_HASHTAGS = 30
MAX_MENTIONS = 20
MAX_USER_TAGS = 20
MAX_ALT_TEXT_CHARS = 1000
MAX_COLLABORATORS = 3
CAROUSEL_MIN_ITEMS, CAROUSEL_MAX_ITEMS = 2, 10

# The same patterns Meta's counting is modelled on in the sandbox: a tag starts a word.
_HASHTAG = re.compile(r"(?<!\w)#\w+")
_MENTION = re.compile(r"(?<!\w)@[\w.]+")


@dataclass(frozen=True)
class Violation:
    field: str
    code: str
    message: str


@dataclass(frozen=True)
class MediaFacts:
    """What was measured at upload; width and height are as displayed (EXIF orientation or video rotation
    applied). The video fields are None for images and for videos uploaded before probing."""

    kind: MediaKind
    size_bytes: int
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    frame_rate: float | None = None

    def video(self) -> VideoFacts:
        return VideoFacts(
            size_bytes=self.size_bytes,
            duration_ms=self.duration_ms,
            width=self.width,
            height=self.height,
            video_codec=self.video_codec,
            audio_codec=self.audio_codec,
            frame_rate=self.frame_rate,
        )


@dataclass(frozen=True)
class PostContent:
    """A post as the rules see it; ``user_tags`` entries are {"username", "x"?, "y"?} mappings."""

    post_type: PostType
    caption: str | None = None
    first_comment: str | None = None
    location_id: str | None = None
    user_tags: Sequence[Mapping[str, Any]] = ()
    alt_text: str | None = None
    # Carousel only: per-item alt text and user tags, in media order.
    items: Sequence[Mapping[str, Any]] | None = None
    reel_options: Mapping[str, Any] | None = None


def text_violations(text: str, field_name: str) -> list[Violation]:
    """Caption rules (also applied to the first comment, which Instagram limits the same way)."""
    found: list[Violation] = []
    if len(text) > MAX_CAPTION_CHARS:
        found.append(
            Violation(
                field_name,
                "text_too_long",
                f"{len(text)} characters; Instagram allows at most {MAX_CAPTION_CHARS}",
            )
        )
    hashtags = len(_HASHTAG.findall(text))
    if hashtags > MAX_HASHTAGS:
        found.append(
            Violation(
                field_name,
                "too_many_hashtags",
                f"{hashtags} hashtags; Instagram allows at most {MAX_HASHTAGS}",
            )
        )
    mentions = len(_MENTION.findall(text))
    if mentions > MAX_MENTIONS:
        found.append(
            Violation(
                field_name,
                "too_many_mentions",
                f"{mentions} @-mentions; Instagram allows at most {MAX_MENTIONS}",
            )
        )
    return found


def publish_at_violation(
    publish_at: datetime, *, now: datetime, horizon: timedelta, past_tolerance: timedelta
) -> Violation | None:
    if publish_at.tzinfo is None or publish_at.utcoffset() is None:
        return Violation("publish_at", "timezone_required", "give a time zone, e.g. 2026-12-01T09:00:00Z")
    if publish_at < now - past_tolerance:
        return Violation(
            "publish_at", "publish_at_in_past", "publish_at is in the past; omit it to publish now"
        )
    if publish_at > now + horizon:
        return Violation(
            "publish_at",
            "publish_at_too_far",
            f"publish_at may be at most {horizon.days} days ahead",
        )
    return None


def post_violations(content: PostContent, media: Sequence[MediaFacts]) -> list[Violation]:
    """Everything a publish of this post would reject, given its media in order."""
    found = _media_violations(content.post_type, media)
    found += _content_violations(content, media)
    return found


def _media_violations(post_type: PostType, media: Sequence[MediaFacts]) -> list[Violation]:
    if post_type is PostType.CAROUSEL:
        if not CAROUSEL_MIN_ITEMS <= len(media) <= CAROUSEL_MAX_ITEMS:
            return [
                Violation(
                    "media_ids",
                    "media_count",
                    f"a carousel takes {CAROUSEL_MIN_ITEMS} to {CAROUSEL_MAX_ITEMS} media, not {len(media)}",
                )
            ]
    elif len(media) != 1:
        return [Violation("media_ids", "media_count", f"a {post_type.value} post takes exactly 1 media")]

    found: list[Violation] = []
    for index, item in enumerate(media):
        where = f"media_ids[{index}]"
        if item.kind is MediaKind.IMAGE and post_type is PostType.REELS:
            found.append(Violation(where, "reels_need_video", "a REELS post takes a video, not an image"))
            continue
        if item.kind is MediaKind.VIDEO:
            found += [Violation(where, p.code, p.message) for p in video_problems(item.video(), post_type)]
            continue
        try:
            if item.width is not None and item.height is not None:
                check_aspect_ratio(item.width, item.height, post_type)
        except MediaRejected as rejected:
            found.append(Violation(where, rejected.code, rejected.message))
    return found


def _not_allowed(field_name: str, post_type: PostType, what: str) -> Violation:
    return Violation(field_name, "not_allowed_for_type", f"{what} cannot be set on a {post_type.value} post")


def _content_violations(content: PostContent, media: Sequence[MediaFacts]) -> list[Violation]:
    post_type = content.post_type
    found: list[Violation] = []
    for name in ("caption", "first_comment"):
        text = getattr(content, name)
        if text is None:
            continue
        if post_type is PostType.STORIES:
            # Stories take no caption and cannot be commented on through the API.
            found.append(_not_allowed(name, post_type, name.replace("_", " ")))
        else:
            found += text_violations(text, name)
    if content.location_id is not None and post_type is PostType.STORIES:
        found.append(_not_allowed("location_id", post_type, "a location"))
    if content.alt_text is not None and post_type is not PostType.IMAGE:
        hint = "; set it per item in items[]" if post_type is PostType.CAROUSEL else ""
        found.append(_not_allowed("alt_text", post_type, "alt text" + hint))
    if content.reel_options is not None and post_type is not PostType.REELS:
        found.append(_not_allowed("reel_options", post_type, "reel options"))
    elif content.reel_options is not None and len(media) == 1:
        offset = content.reel_options.get("thumb_offset_ms")
        problem = thumb_offset_problem(offset, media[0].duration_ms) if isinstance(offset, int) else None
        if problem is not None:
            found.append(Violation("reel_options.thumb_offset_ms", problem.code, problem.message))

    if content.user_tags:
        if post_type is PostType.CAROUSEL:
            found.append(_not_allowed("user_tags", post_type, "post-level user tags; tag items in items[]"))
        else:
            kind = media[0].kind if len(media) == 1 else None
            # Story tags may leave out x and y; image and carousel-image tags may not.
            found += _tag_violations(
                content.user_tags, "user_tags", kind, positions_optional=post_type is PostType.STORIES
            )

    if content.items is not None:
        if post_type is not PostType.CAROUSEL:
            found.append(_not_allowed("items", post_type, "per-item options"))
        elif len(content.items) != len(media):
            found.append(
                Violation(
                    "items",
                    "items_length_mismatch",
                    f"items has {len(content.items)} entries for {len(media)} media: give one per media",
                )
            )
        else:
            for index, (item, facts) in enumerate(zip(content.items, media, strict=True)):
                if item.get("alt_text") is not None and facts.kind is MediaKind.VIDEO:
                    found.append(
                        Violation(
                            f"items[{index}].alt_text", "not_allowed_for_type", "alt text is for images only"
                        )
                    )
                tags = item.get("user_tags") or ()
                found += _tag_violations(
                    tags, f"items[{index}].user_tags", facts.kind, positions_optional=False
                )
    return found


def _tag_violations(
    tags: Sequence[Mapping[str, Any]], field_name: str, kind: MediaKind | None, *, positions_optional: bool
) -> list[Violation]:
    found: list[Violation] = []
    for index, tag in enumerate(tags):
        has_position = tag.get("x") is not None or tag.get("y") is not None
        where = f"{field_name}[{index}]"
        if kind is MediaKind.VIDEO and has_position:
            found.append(
                Violation(where, "user_tag_position_not_allowed", "x and y do not apply to tags on a video")
            )
        elif kind is MediaKind.IMAGE and not positions_optional:
            if tag.get("x") is None or tag.get("y") is None:
                found.append(
                    Violation(where, "user_tag_position_required", "tags on an image need x and y (0 to 1)")
                )
    return found
