"""Scheduled posts as a client sends them, and what the post rules (``chronogram.post_rules``) see of them.

The requests map themselves to the rules' inputs (``PostCreate.rule_content``, ``PostUpdate.content_over``) and
to the values stored for them (``PostCreate.stored_content``), so that a route or a use case never picks a
request apart itself. What a client gets back is in ``api.schemas.post_responses``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, TypedDict, cast

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.schemas.common import Id
from api.schemas.templates import Variables
from chronogram.enums import PostType
from chronogram.models import MediaAsset, Post, PostMedia, ReelOptions, UserTag
from chronogram.post_rules import (
    CAROUSEL_MAX_ITEMS,
    MAX_ALT_TEXT_CHARS,
    MAX_CAPTION_CHARS,
    MAX_COLLABORATORS,
    MAX_USER_TAGS,
    MediaFacts,
    PostContent,
)

Username = Annotated[str, Field(pattern=r"^[A-Za-z0-9._]{1,30}$", examples=["friend.account"])]
Caption = Annotated[
    str,
    Field(
        max_length=MAX_CAPTION_CHARS,
        description="At most 2,200 characters, 30 hashtags and 20 @-mentions",
    ),
]
AltText = Annotated[str, Field(max_length=MAX_ALT_TEXT_CHARS)]
LocationId = Annotated[str, Field(pattern=r"^[0-9]{1,32}$", description="A Facebook Page id with a location")]
# At most 30 days: a container prepared for the post lives 24 h, and a longer wait is a new post.
MAX_LATENESS_SECONDS = 30 * 24 * 3600
# Shared with api.schemas.accounts.
MaxLateness = Annotated[
    int,
    Field(
        ge=0,
        le=MAX_LATENESS_SECONDS,
        description="How late an outage (of Instagram, or of Chronogram's storage or database) may make the post, "
        "in seconds after publish_at: until then failures only delay it; past it the post fails with the error "
        "code PublishDeadlinePassed. 0: on time (within a minute) or not at all. At most 2592000 (30 days)",
        examples=[3600],
    ),
]


class UserTagIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Username
    x: float | None = Field(default=None, ge=0, le=1, description="0..1 from the left; required on images")
    y: float | None = Field(default=None, ge=0, le=1, description="0..1 from the top; required on images")


UserTags = Annotated[list[UserTagIn], Field(max_length=MAX_USER_TAGS)]


def user_tag_values(tags: Sequence[UserTagIn]) -> list[UserTag]:
    # The schema has exactly the TypedDict's keys; None (an absent x or y) is left out, as Instagram wants.
    return [cast(UserTag, tag.model_dump(exclude_none=True)) for tag in tags]


class CarouselItemIn(BaseModel):
    """Options of one carousel item, in the order of ``media_ids``."""

    model_config = ConfigDict(extra="forbid")

    alt_text: AltText | None = None
    user_tags: UserTags = Field(default_factory=list)

    def value(self) -> dict[str, Any]:
        """As stored on the post's media row, and as the rules take a carousel item."""
        return {"alt_text": self.alt_text, "user_tags": user_tag_values(self.user_tags)}


def item_values(items: Sequence[CarouselItemIn] | None) -> list[dict[str, Any]] | None:
    return None if items is None else [item.value() for item in items]


class ReelOptionsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    share_to_feed: bool | None = None
    cover_url: str | None = Field(
        default=None,
        pattern=r"^https?://\S+$",
        max_length=2048,
        description="A public JPEG; wins over thumb_offset",
    )
    thumb_offset_ms: int | None = Field(default=None, ge=0, le=15 * 60 * 1000)
    collaborators: list[Username] | None = Field(default=None, max_length=MAX_COLLABORATORS)
    audio_name: str | None = Field(default=None, min_length=1, max_length=200)


def reel_options_value(options: ReelOptionsIn | None) -> ReelOptions | None:
    return cast(ReelOptions, options.model_dump(exclude_none=True)) if options is not None else None


_IMAGE_EXAMPLE: dict[str, Any] = {
    "account_id": 1,
    "type": "IMAGE",
    "media_ids": [7],
    "caption": "Fresh bread, out of the oven at 7 #bakery",
    "first_comment": "#sourdough #breakfast",
    "publish_at": "2026-12-01T09:00:00+01:00",
    "user_tags": [{"username": "our.baker", "x": 0.5, "y": 0.4}],
    "alt_text": "A loaf of sourdough on a wooden board",
}


class StoredContent(TypedDict):
    """A new post's content, in the values of its columns (and of its media rows' ``items``)."""

    caption: str | None
    first_comment: str | None
    location_id: str | None
    user_tags: list[UserTag]
    alt_text: str | None
    items: list[dict[str, Any]] | None
    reel_options: ReelOptions | None


class PostCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                _IMAGE_EXAMPLE,
                {
                    "account_id": 1,
                    "type": "CAROUSEL",
                    "media_ids": [7, 8, 9],
                    "caption": "Three loaves, three flours",
                    "items": [{"alt_text": "Rye"}, {"alt_text": "Spelt"}, {"alt_text": "Wheat"}],
                },
                {
                    "account_id": 1,
                    "type": "REELS",
                    "media_ids": [10],
                    "caption": "How we shape a boule",
                    "reel_options": {"share_to_feed": True, "thumb_offset_ms": 1500},
                },
            ]
        },
    )

    account_id: Id
    type: PostType
    media_ids: list[Id] = Field(
        min_length=1,
        max_length=CAROUSEL_MAX_ITEMS,
        description="Uploaded media, in order: 1 for IMAGE, REELS (a video) and STORIES; 2 to 10 for CAROUSEL",
    )
    caption: Caption | None = None
    first_comment: Caption | None = Field(
        default=None, description="Posted as a comment right after publishing"
    )
    publish_at: AwareDatetime | None = Field(
        default=None,
        description="With a time zone; not in the past, at most 180 days ahead. Omitted: publish now",
    )
    queue: bool = Field(
        default=False,
        description="true instead of publish_at: the post takes the next free slot of its account's posting "
        "schedule (PUT /v1/accounts/{id}/schedule)",
    )
    location_id: LocationId | None = None
    user_tags: UserTags = Field(default_factory=list, description="IMAGE, REELS and STORIES; at most 20")
    alt_text: AltText | None = Field(default=None, description="IMAGE only (carousel items: see items)")
    items: list[CarouselItemIn] | None = Field(
        default=None,
        max_length=CAROUSEL_MAX_ITEMS,
        description="CAROUSEL only: per-item alt text and user tags",
    )
    reel_options: ReelOptionsIn | None = Field(default=None, description="REELS only")
    max_lateness_seconds: MaxLateness | None = Field(
        default=None, description="Omitted or null: the account's max_lateness_seconds (default 24 h)"
    )
    template_id: Id | None = Field(
        default=None,
        description="Instead of `caption`: the caption is this template rendered with `variables` (stored as "
        "rendered, with the template's id), and the first comment is the template's unless `first_comment` is "
        "given. Not with `caption` (422 `caption_and_template`)",
    )
    variables: Variables | None = Field(default=None, description="With `template_id` only")
    draft: bool = Field(
        default=False,
        description="Save the post as a draft: status `draft`, no workflow, until `POST /v1/posts/{id}/schedule`. "
        "It is checked like a post, except for what can still change before it is scheduled: its number of "
        "media and its time (omitted: the moment it is saved)",
    )

    def stored_content(self) -> StoredContent:
        """The post's content as it is stored."""
        return StoredContent(
            caption=self.caption,
            first_comment=self.first_comment,
            location_id=self.location_id,
            user_tags=user_tag_values(self.user_tags),
            alt_text=self.alt_text,
            items=item_values(self.items),
            reel_options=reel_options_value(self.reel_options),
        )

    def rule_content(self) -> PostContent:
        """The post as the rules see it: its type and its content as stored."""
        return PostContent(post_type=self.type, **self.stored_content())


class PostUpdate(BaseModel):
    """Only the fields sent change; ``null`` clears an optional field. Media and type cannot change."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"publish_at": "2026-12-01T10:30:00Z"},
                {"caption": "Fresh bread, out of the oven at 8 #bakery", "first_comment": None},
            ]
        },
    )

    publish_at: AwareDatetime | None = Field(default=None, description="A new time: reschedules the post")
    caption: Caption | None = None
    first_comment: Caption | None = None
    location_id: LocationId | None = None
    user_tags: UserTags | None = None
    alt_text: AltText | None = None
    items: list[CarouselItemIn] | None = Field(default=None, max_length=CAROUSEL_MAX_ITEMS)
    reel_options: ReelOptionsIn | None = None
    max_lateness_seconds: MaxLateness | None = Field(
        default=None,
        description="null: the account's setting. Read when the post's preparation begins (10 minutes before "
        "publish_at), and locked from then on like its content",
    )

    def content_fields(self) -> set[str]:
        """The content fields sent (everything sent but ``publish_at``)."""
        return self.model_fields_set - {"publish_at"}

    def column_values(self) -> dict[str, Any]:
        """The post's columns this update sets (carousel items are on their media rows)."""
        return {name: self._column_value(name) for name in self.content_fields() if name != "items"}

    def _column_value(self, name: str) -> Any:
        if name == "user_tags":
            return user_tag_values(self.user_tags or [])
        if name == "reel_options":
            return reel_options_value(self.reel_options)
        return getattr(self, name)

    def carousel_item_values(self) -> list[dict[str, Any]] | None:
        """The carousel items this update sets; None when it leaves them as they are."""
        return item_values(self.items) if "items" in self.model_fields_set else None

    def content_over(self, post: Post, media: Sequence[PostMedia]) -> PostContent:
        """The post as the rules see it once this update is applied: the fields sent over the stored ones."""
        sent = self.content_fields()
        stored_items = [{"alt_text": item.alt_text, "user_tags": list(item.user_tags)} for item in media]
        return PostContent(
            post_type=post.type,
            caption=self.caption if "caption" in sent else post.caption,
            first_comment=self.first_comment if "first_comment" in sent else post.first_comment,
            location_id=self.location_id if "location_id" in sent else post.location_id,
            user_tags=user_tag_values(self.user_tags or []) if "user_tags" in sent else list(post.user_tags),
            alt_text=self.alt_text if "alt_text" in sent else post.alt_text,
            items=item_values(self.items)
            if "items" in sent
            else (stored_items if post.type is PostType.CAROUSEL else None),
            reel_options=reel_options_value(self.reel_options)
            if "reel_options" in sent
            else post.reel_options,
        )


class ScheduleRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{}, {"publish_at": "2026-12-02T09:00:00Z"}]}
    )

    publish_at: AwareDatetime | None = Field(
        default=None,
        description="When to publish; omitted: the draft's publish_at, or now if that has passed",
    )


class SignalReason(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "typo in the caption"}]}
    )

    reason: str = Field(default="", max_length=500, description="Recorded with the post's history")


class RetryRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{}, {"publish_at": "2026-12-02T09:00:00Z"}]}
    )

    publish_at: AwareDatetime | None = Field(
        default=None, description="When to try again; omitted: the original time, or now if it has passed"
    )


def media_facts(asset: MediaAsset) -> MediaFacts:
    """What the rules see of an uploaded media: what was measured when it arrived."""
    return MediaFacts(
        kind=asset.kind,
        size_bytes=asset.size_bytes,
        width=asset.width,
        height=asset.height,
        duration_ms=asset.duration_ms,
        video_codec=asset.video_codec,
        audio_codec=asset.audio_codec,
        frame_rate=asset.frame_rate,
    )
