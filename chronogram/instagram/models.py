"""Values sent to and read from the Graph API: container specs in, small frozen results out."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from chronogram.contracts import ContainerStatusCode
from chronogram.instagram.errors import GraphAPIError, classify_container_error

__all__ = [
    "Account",
    "CarouselImageItemSpec",
    "CarouselSpec",
    "CarouselVideoItemSpec",
    "Comment",
    "ContainerRef",
    "ContainerSpec",
    "ContainerStatus",
    "ContainerStatusCode",
    "ImageSpec",
    "Media",
    "MediaProductType",
    "MediaRef",
    "MediaType",
    "OnlineFollowers",
    "PublishingLimit",
    "ReelSpec",
    "StorySpec",
    "TokenGrant",
    "UserTag",
]


class MediaType(StrEnum):
    """``media_type`` as read back; reels read back as VIDEO. Fields typed ``str`` compare equal to these."""

    IMAGE = "IMAGE"
    VIDEO = "VIDEO"
    CAROUSEL_ALBUM = "CAROUSEL_ALBUM"


class MediaProductType(StrEnum):
    AD = "AD"
    FEED = "FEED"
    STORY = "STORY"
    REELS = "REELS"


@dataclass(frozen=True, slots=True)
class UserTag:
    """A tagged public account. ``x``/``y`` (0..1 from the top-left) are required on images, unused on video."""

    username: str
    x: float | None = None
    y: float | None = None

    def to_wire(self) -> dict[str, Any]:
        tag: dict[str, Any] = {"username": self.username}
        if self.x is not None:
            tag["x"] = self.x
        if self.y is not None:
            tag["y"] = self.y
        return tag


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _common(
    params: dict[str, str],
    *,
    caption: str | None = None,
    location_id: str | None = None,
    user_tags: tuple[UserTag, ...] = (),
    alt_text: str | None = None,
    collaborators: tuple[str, ...] = (),
) -> dict[str, str]:
    if caption is not None:
        params["caption"] = caption
    if location_id is not None:
        params["location_id"] = location_id
    if user_tags:
        params["user_tags"] = _json([tag.to_wire() for tag in user_tags])
    if alt_text is not None:
        params["alt_text"] = alt_text
    if collaborators:
        params["collaborators"] = _json(list(collaborators))
    return params


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """A single feed image (no ``media_type``: that is how Meta spells "image")."""

    image_url: str
    caption: str | None = None
    location_id: str | None = None
    user_tags: tuple[UserTag, ...] = ()
    alt_text: str | None = None
    collaborators: tuple[str, ...] = ()

    def to_params(self) -> dict[str, str]:
        return _common(
            {"image_url": self.image_url},
            caption=self.caption,
            location_id=self.location_id,
            user_tags=self.user_tags,
            alt_text=self.alt_text,
            collaborators=self.collaborators,
        )


@dataclass(frozen=True, slots=True)
class ReelSpec:
    """A reel; since 2023 this is also how a single feed video is published."""

    video_url: str
    caption: str | None = None
    location_id: str | None = None
    user_tags: tuple[UserTag, ...] = ()
    collaborators: tuple[str, ...] = ()
    share_to_feed: bool | None = None
    cover_url: str | None = None
    thumb_offset_ms: int | None = None

    def to_params(self) -> dict[str, str]:
        params = _common(
            {"media_type": "REELS", "video_url": self.video_url},
            caption=self.caption,
            location_id=self.location_id,
            user_tags=self.user_tags,
            collaborators=self.collaborators,
        )
        if self.share_to_feed is not None:
            params["share_to_feed"] = _bool(self.share_to_feed)
        if self.cover_url is not None:
            params["cover_url"] = self.cover_url
        if self.thumb_offset_ms is not None:
            params["thumb_offset"] = str(self.thumb_offset_ms)
        return params


@dataclass(frozen=True, slots=True)
class StorySpec:
    """An image or video story. Stories take no caption, location, alt text or collaborators."""

    image_url: str | None = None
    video_url: str | None = None
    user_tags: tuple[UserTag, ...] = ()

    def __post_init__(self) -> None:
        if (self.image_url is None) == (self.video_url is None):
            raise ValueError("a story needs exactly one of image_url and video_url")

    def to_params(self) -> dict[str, str]:
        params = {"media_type": "STORIES"}
        if self.image_url is not None:
            params["image_url"] = self.image_url
        if self.video_url is not None:
            params["video_url"] = self.video_url
        return _common(params, user_tags=self.user_tags)


@dataclass(frozen=True, slots=True)
class CarouselImageItemSpec:
    """An image slide. Captions and locations belong on the parent :class:`CarouselSpec`."""

    image_url: str
    user_tags: tuple[UserTag, ...] = ()
    alt_text: str | None = None

    def to_params(self) -> dict[str, str]:
        return _common(
            {"image_url": self.image_url, "is_carousel_item": "true"},
            user_tags=self.user_tags,
            alt_text=self.alt_text,
        )


@dataclass(frozen=True, slots=True)
class CarouselVideoItemSpec:
    video_url: str

    def to_params(self) -> dict[str, str]:
        return {"media_type": "VIDEO", "video_url": self.video_url, "is_carousel_item": "true"}


@dataclass(frozen=True, slots=True)
class CarouselSpec:
    """The parent container; ``children`` are ids of FINISHED item containers, in display order."""

    children: tuple[str, ...]
    caption: str | None = None
    location_id: str | None = None
    collaborators: tuple[str, ...] = ()
    share_to_feed: bool | None = None

    def to_params(self) -> dict[str, str]:
        params = _common(
            {"media_type": "CAROUSEL", "children": ",".join(self.children)},
            caption=self.caption,
            location_id=self.location_id,
            collaborators=self.collaborators,
        )
        if self.share_to_feed is not None:
            params["share_to_feed"] = _bool(self.share_to_feed)
        return params


ContainerSpec = (
    ImageSpec | ReelSpec | StorySpec | CarouselImageItemSpec | CarouselVideoItemSpec | CarouselSpec
)


@dataclass(frozen=True, slots=True)
class ContainerRef:
    id: str


@dataclass(frozen=True, slots=True)
class ContainerStatus:
    id: str
    status_code: ContainerStatusCode
    status: str | None = None

    @property
    def is_finished(self) -> bool:
        return self.status_code is ContainerStatusCode.FINISHED

    @property
    def is_published(self) -> bool:
        return self.status_code is ContainerStatusCode.PUBLISHED

    def error(self) -> GraphAPIError | None:
        """For ERROR/EXPIRED, the exception this status stands for (not raised); None otherwise."""
        return classify_container_error(self.id, self.status_code.value, self.status)

    def raise_for_status(self) -> None:
        error = self.error()
        if error is not None:
            raise error


@dataclass(frozen=True, slots=True)
class MediaRef:
    """A published IG media id (not the container id)."""

    id: str


@dataclass(frozen=True, slots=True)
class Media:
    id: str
    media_type: str | None = None
    media_product_type: str | None = None
    permalink: str | None = None
    timestamp: datetime | None = None
    caption: str | None = None
    shortcode: str | None = None


@dataclass(frozen=True, slots=True)
class Comment:
    id: str
    text: str | None = None
    timestamp: datetime | None = None
    username: str | None = None


@dataclass(frozen=True, slots=True)
class PublishingLimit:
    quota_usage: int
    quota_total: int | None = None
    quota_duration: timedelta | None = None

    @property
    def remaining(self) -> int | None:
        return None if self.quota_total is None else max(self.quota_total - self.quota_usage, 0)


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    username: str | None = None


@dataclass(frozen=True, slots=True)
class TokenGrant:
    access_token: str = field(repr=False)
    token_type: str | None = None
    expires_in: timedelta | None = None


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """``GET /debug_token``'s ``data`` (reference section 2.3). ``expires_at`` None: the token does not expire
    (Meta sends 0). ``error_code``/``error_message``: why an invalid token is invalid, when Meta says."""

    is_valid: bool
    expires_at: datetime | None = None
    data_access_expires_at: datetime | None = None
    issued_at: datetime | None = None
    token_type: str | None = None
    scopes: tuple[str, ...] = ()
    user_id: str | None = None
    error_code: int | None = None
    error_subcode: int | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class OnlineFollowers:
    """One ``online_followers`` value: the followers online in each hour of the 24 hours before ``end_time``
    (``by_hour[k]``: the hour starting at end_time − 24 h + k h)."""

    end_time: datetime
    by_hour: Mapping[int, int]


def parse_timestamp(value: Any) -> datetime | None:
    """Meta's ``2017-05-19T23:27:28+0000``; None for anything else rather than failing a whole read."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def media_from_wire(data: Mapping[str, Any]) -> Media:
    def text(key: str) -> str | None:
        value = data.get(key)
        return value if isinstance(value, str) else None

    return Media(
        id=str(data["id"]),
        media_type=text("media_type"),
        media_product_type=text("media_product_type"),
        permalink=text("permalink"),
        timestamp=parse_timestamp(data.get("timestamp")),
        caption=text("caption"),
        shortcode=text("shortcode"),
    )
