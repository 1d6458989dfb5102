"""Scheduled posts as a client gets them back: the row, its media, its workflow's live state and its history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from chronogram.contracts import ErrorType, PostSignal, PostState, SignalRefusal
from chronogram.enums import EventKind, PostStatus, PostType
from chronogram.models import Post, PostEvent, PostMedia


class PostMediaFields(Protocol):
    """What a response reads of a post's media: an ORM row, or a plain result row of the same columns."""

    @property
    def media_id(self) -> int: ...
    @property
    def position(self) -> int: ...
    @property
    def alt_text(self) -> str | None: ...
    @property
    def user_tags(self) -> Sequence[Mapping[str, object]]: ...


class PostFields(Protocol):
    """What a response reads of a post: an ORM row, or a plain result row of the same columns (a list page reads
    those, as loading 50 ORM objects cost more than the query)."""

    @property
    def id(self) -> int | None: ...
    @property
    def account_id(self) -> int: ...
    @property
    def type(self) -> PostType: ...
    @property
    def status(self) -> PostStatus: ...
    @property
    def publish_at(self) -> datetime: ...
    @property
    def caption(self) -> str | None: ...
    @property
    def first_comment(self) -> str | None: ...
    @property
    def location_id(self) -> str | None: ...
    @property
    def user_tags(self) -> Sequence[Mapping[str, object]]: ...
    @property
    def alt_text(self) -> str | None: ...
    @property
    def reel_options(self) -> Mapping[str, object] | None: ...
    @property
    def max_lateness_seconds(self) -> int | None: ...
    @property
    def ig_media_id(self) -> str | None: ...
    @property
    def permalink(self) -> str | None: ...
    @property
    def error_code(self) -> ErrorType | None: ...
    @property
    def error_message(self) -> str | None: ...
    @property
    def published_at(self) -> datetime | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...
    @property
    def template_id(self) -> int | None: ...


class PostMediaOut(BaseModel):
    media_id: int
    position: int
    alt_text: str | None
    user_tags: list[dict[str, Any]]

    @classmethod
    def from_row(cls, row: PostMediaFields) -> PostMediaOut:
        return cls(
            media_id=row.media_id,
            position=row.position,
            alt_text=row.alt_text,
            user_tags=[dict(tag) for tag in row.user_tags],
        )


class PostError(BaseModel):
    code: ErrorType | None = Field(
        description="What failed, as a stable type: e.g. GraphAuthError (reconnect the account), MediaRejected "
        "(fix the media), PublishOutcomeUnknown (Instagram never confirmed the publish)"
    )
    message: str | None


_POST_EXAMPLE: dict[str, Any] = {
    "id": 42,
    "account_id": 1,
    "type": "IMAGE",
    "status": "scheduled",
    "publish_at": "2026-12-01T08:00:00Z",
    "caption": "Fresh bread, out of the oven at 7 #bakery",
    "first_comment": "#sourdough #breakfast",
    "location_id": None,
    "user_tags": [{"username": "our.baker", "x": 0.5, "y": 0.4}],
    "alt_text": "A loaf of sourdough on a wooden board",
    "reel_options": None,
    "media": [{"media_id": 7, "position": 0, "alt_text": None, "user_tags": []}],
    "ig_media_id": None,
    "permalink": None,
    "error": None,
    "published_at": None,
    "template_id": None,
    "created_at": "2026-05-01T09:00:00Z",
    "updated_at": "2026-05-01T09:00:00Z",
}


class PostOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_POST_EXAMPLE]})

    id: int
    account_id: int
    type: PostType
    status: PostStatus = Field(
        description="The workflow's status when it could be asked, else the stored one; `draft` for a draft"
    )
    publish_at: datetime
    caption: str | None
    first_comment: str | None
    location_id: str | None
    user_tags: list[dict[str, Any]]
    alt_text: str | None
    reel_options: dict[str, Any] | None
    max_lateness_seconds: int | None = Field(
        description="How late outages may make the post, in seconds after publish_at; null: the account's setting"
    )
    media: list[PostMediaOut]
    ig_media_id: str | None = Field(description="Instagram's id of the published media")
    permalink: str | None
    error: PostError | None = Field(description="Why the post failed, if it did")
    published_at: datetime | None = Field(
        description="When Instagram answered its media_publish call: when the post went live (its permalink and "
        "first comment come after it); null until then"
    )
    template_id: int | None = Field(
        description="The template its caption was rendered from; null if none, or once the template is deleted"
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, post: PostFields, media: Sequence[PostMediaFields]) -> PostOut:
        return cls(**_post_fields(post, media))


def _post_fields(post: PostFields, media: Sequence[PostMediaFields]) -> dict[str, Any]:
    assert post.id is not None
    failed = post.error_code is not None or post.error_message is not None
    return {
        "id": post.id,
        "account_id": post.account_id,
        "type": post.type,
        "status": post.status,
        "publish_at": post.publish_at,
        "caption": post.caption,
        "first_comment": post.first_comment,
        "location_id": post.location_id,
        "user_tags": [dict(tag) for tag in post.user_tags],
        "alt_text": post.alt_text,
        "reel_options": dict(post.reel_options) if post.reel_options is not None else None,
        "max_lateness_seconds": post.max_lateness_seconds,
        "media": [PostMediaOut.from_row(item) for item in media],
        "ig_media_id": post.ig_media_id,
        "permalink": post.permalink,
        "error": PostError(code=post.error_code, message=post.error_message) if failed else None,
        "published_at": post.published_at,
        "template_id": post.template_id,
        "created_at": post.created_at,
        "updated_at": post.updated_at,
    }


class RefusedSignalOut(BaseModel):
    signal: PostSignal
    status: PostStatus = Field(description="The post's status when the signal arrived")
    received_at: datetime
    reason: SignalRefusal | None = Field(
        default=None,
        description="not_scheduled: publishing had begun or the post was done; being_cancelled: a cancellation "
        "came first; malformed_input: the signal had no input or input of the wrong shape (typed by hand)",
    )


class LiveState(BaseModel):
    """What the post's workflow says right now."""

    status: PostStatus
    step: str = Field(
        description="e.g. 'waiting to prepare', 'ready; waiting for publish time', 'publishing'; while an outage "
        "delays the post, why and since when: 'delayed: Instagram unavailable since 09:02 UTC'"
    )
    publish_at: datetime
    delayed_since: datetime | None = Field(
        default=None, description="While an outage delays the post: since when (its last error: last_error)"
    )
    deadline: datetime | None = Field(
        default=None,
        description="The latest the post may go out (publish_at + max lateness); known once its preparation began",
    )
    publish_attempts: int
    last_error: str | None
    media_id: str | None
    permalink: str | None
    refused_signals: list[RefusedSignalOut] = Field(
        description="Signals the workflow refused (changes that arrived once publishing had begun, after a "
        "cancellation, or without a valid input), each also recorded in the post's events"
    )

    @classmethod
    def from_state(cls, state: PostState) -> LiveState:
        return cls(
            status=state.status,
            step=state.delay.describe() if state.delay is not None else state.step.value,
            publish_at=state.publish_at,
            delayed_since=state.delay.since if state.delay is not None else None,
            deadline=state.deadline,
            publish_attempts=state.publish_attempts,
            last_error=state.last_error,
            media_id=state.media_id,
            permalink=state.permalink,
            refused_signals=[
                RefusedSignalOut(signal=r.signal, status=r.status, received_at=r.received_at, reason=r.reason)
                for r in state.refused_signals
            ],
        )


class PostEventOut(BaseModel):
    id: int
    occurred_at: datetime
    kind: EventKind
    from_status: PostStatus | None
    to_status: PostStatus | None
    message: str | None
    error_code: str | None
    attempt: int | None

    @classmethod
    def from_row(cls, row: PostEvent) -> PostEventOut:
        assert row.id is not None
        message = (row.detail or {}).get("message") if isinstance(row.detail, dict) else None
        return cls(
            id=row.id,
            occurred_at=row.occurred_at,
            kind=row.kind,
            from_status=row.from_status,
            to_status=row.to_status,
            message=message if isinstance(message, str) else row.error_message,
            error_code=row.error_code,
            attempt=row.attempt,
        )


class PostDetail(PostOut):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_POST_EXAMPLE,
                    "live": {
                        "status": "scheduled",
                        "step": "waiting to prepare",
                        "publish_at": "2026-12-01T08:00:00Z",
                        "publish_attempts": 0,
                        "last_error": None,
                        "media_id": None,
                        "permalink": None,
                        "refused_signals": [],
                    },
                    "events": [
                        {
                            "id": 1,
                            "occurred_at": "2026-05-01T09:00:00Z",
                            "kind": "transition",
                            "from_status": None,
                            "to_status": "scheduled",
                            "message": "created",
                            "error_code": None,
                            "attempt": None,
                        }
                    ],
                }
            ]
        }
    )

    live: LiveState | None = Field(
        description="The workflow's live state while the post is scheduled or publishing; null otherwise, or "
        "when the workflow did not answer in time"
    )
    events: list[PostEventOut] = Field(description="The post's history, oldest first")

    @classmethod
    def build(
        cls, post: Post, media: list[PostMedia], events: list[PostEvent], state: PostState | None
    ) -> PostDetail:
        fields = _post_fields(post, media)
        if state is not None:
            # The workflow is the source of truth once it runs; the row catches up through its activities.
            fields["status"] = state.status
            fields["publish_at"] = state.publish_at
        return cls(
            **fields,
            live=LiveState.from_state(state) if state is not None else None,
            events=[PostEventOut.from_row(event) for event in events],
        )


class PostPage(BaseModel):
    data: list[PostOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")
