"""Types and names shared by the API, the worker and the workflows: everything that crosses a Temporal boundary.

Kept light (no I/O, no heavy imports) because workflow code imports it inside the sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from temporalio.common import SearchAttributeKey

from chronogram.enums import EventKind, PostStatus, PostType

TASK_QUEUE = "chronogram-posts"


class MediaKind(StrEnum):
    IMAGE = "IMAGE"
    VIDEO = "VIDEO"


# Custom search attributes operators filter on in the Web UI, e.g.
#   WorkflowType='ScheduledPostWorkflow' AND PostStatus='scheduled' AND AccountId='42'
POST_STATUS = SearchAttributeKey.for_keyword("PostStatus")
POST_TYPE = SearchAttributeKey.for_keyword("PostType")
ACCOUNT_ID = SearchAttributeKey.for_keyword("AccountId")
PUBLISH_AT = SearchAttributeKey.for_datetime("PublishAt")

SEARCH_ATTRIBUTES: tuple[SearchAttributeKey[Any], ...] = (POST_STATUS, POST_TYPE, ACCOUNT_ID, PUBLISH_AT)


def post_workflow_id(post_id: int | str) -> str:
    return f"post-{post_id}"


# Error text that enters a history (failures, query results) is capped: histories stay small and no provider dump
# of unknown content is copied into them.
MAX_ERROR_TEXT = 500


def cap_error_text(text: str) -> str:
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 1] + "…"


# --- ScheduledPostWorkflow: input, result, signals, query -----------------------------------------------------


@dataclass(frozen=True)
class ScheduledPostInput:
    """Ids only: the content lives in the database and the token never leaves the activities."""

    post_id: int
    publish_at: datetime


@dataclass(frozen=True)
class ScheduledPostResult:
    post_id: int
    status: PostStatus
    media_id: str | None = None
    permalink: str | None = None


@dataclass(frozen=True)
class CancelRequest:
    reason: str = ""


@dataclass(frozen=True)
class RescheduleRequest:
    publish_at: datetime


@dataclass(frozen=True)
class PublishNowRequest:
    reason: str = ""


@dataclass(frozen=True)
class RefusedSignal:
    signal: str
    status: PostStatus
    received_at: datetime


class PublishStep(StrEnum):
    SCHEDULED = "waiting to prepare"
    PREPARING_MEDIA = "preparing media"
    WAITING_FOR_QUOTA = "waiting for publishing quota"
    CREATING_CONTAINERS = "creating containers"
    WAITING_FOR_CONTAINERS = "waiting for Instagram to process media"
    WAITING = "ready; waiting for publish time"
    PUBLISHING = "publishing"
    RECONCILING = "checking whether the post went live"
    FINISHING = "fetching permalink and posting first comment"
    DONE = "done"


@dataclass
class PostState:
    """What the workflow's query answers: the live state of one post."""

    post_id: int
    status: PostStatus
    publish_at: datetime
    step: PublishStep
    container_ids: list[str] = field(default_factory=list)
    media_id: str | None = None
    permalink: str | None = None
    publish_attempts: int = 0
    last_error: str | None = None
    refused_signals: list[RefusedSignal] = field(default_factory=list)


# --- Activities ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostRef:
    post_id: int


@dataclass(frozen=True)
class PlannedMedia:
    position: int
    media_id: int
    kind: MediaKind


@dataclass(frozen=True)
class PublishPlan:
    """What the workflow needs to drive a publish; read from the database when publishing begins."""

    post_id: int
    account_id: int
    post_type: PostType
    media: list[PlannedMedia]
    has_first_comment: bool


@dataclass(frozen=True)
class EventRecord:
    """An audit row; ``dedupe_key`` makes recording it idempotent under activity retries."""

    post_id: int
    kind: EventKind
    message: str
    dedupe_key: str
    status_from: PostStatus | None = None
    status_to: PostStatus | None = None
    publish_at: datetime | None = None
    error_code: str | None = None


@dataclass(frozen=True)
class PreparedMedia:
    position: int
    rendition_key: str
    kind: MediaKind


@dataclass(frozen=True)
class PreparedMediaList:
    items: list[PreparedMedia]


@dataclass(frozen=True)
class CreateContainerInput:
    """``position`` None is the post's own container (the carousel parent, or the single image/reel/story)."""

    post_id: int
    position: int | None = None
    children: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ContainerRef:
    container_id: str


@dataclass(frozen=True)
class ContainerCheck:
    post_id: int
    container_id: str


@dataclass(frozen=True)
class ContainerReport:
    container_id: str
    status_code: str
    detail: str = ""


@dataclass(frozen=True)
class QuotaReport:
    usage: int
    total: int

    @property
    def exhausted(self) -> bool:
        return self.usage >= self.total


@dataclass(frozen=True)
class PublishInput:
    post_id: int
    container_id: str
    attempt: int
    # The publish time, when the workflow woke before it: the activity holds media_publish until then.
    not_before: datetime | None = None


class PublishOutcome(StrEnum):
    PUBLISHED = "published"
    ALREADY_PUBLISHED = "already_published"  # the container was PUBLISHED before this call: nothing was sent


@dataclass(frozen=True)
class PublishResult:
    outcome: PublishOutcome
    media_id: str | None


@dataclass(frozen=True)
class ReconcileInput:
    post_id: int
    container_id: str
    attempted_at: datetime


@dataclass(frozen=True)
class ReconcileResult:
    status_code: str
    media_id: str | None = None


@dataclass(frozen=True)
class MediaRef:
    post_id: int
    media_id: str


@dataclass(frozen=True)
class PermalinkResult:
    permalink: str | None


@dataclass(frozen=True)
class FirstCommentResult:
    comment_id: str
    created: bool


@dataclass(frozen=True)
class FinishInput:
    post_id: int
    status: PostStatus
    media_id: str | None = None
    permalink: str | None = None
    error_code: str | None = None
    error_message: str | None = None


# ApplicationError types raised by activities besides the Graph API kinds (chronogram.instagram.errors).
MEDIA_REJECTED = "MediaRejected"
POST_NOT_FOUND = "PostNotFound"
PUBLISH_OUTCOME_UNKNOWN = "PublishOutcomeUnknown"
