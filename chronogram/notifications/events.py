"""The events clients receive: stable types (chronogram.enums.NotificationType) and versioned JSON payloads.

Every payload has the same envelope::

    {"id": "evt_...", "type": "post.published", "version": 1, "occurred_at": "2026-...Z", "data": {...}}

``id`` is also the ``webhook-id`` header, the same on every retry and redelivery, so that a receiver can drop
duplicates. ``data`` of a post's event says everything a client needs to act without calling back: the post, its
account, status, times, Instagram ids, the lag of a publish, and for an error its code, message and what to do.
Never a token or a secret: payloads are built from the columns named here only.

Delays: ``post.delayed`` is sent once per delay episode, when a post begins waiting (an outage outlasted its
retries, or Instagram refused its account's token and a reconnect is awaited); its ``data.delay`` says why, since
when and until when the post keeps waiting. There is no "resumed" type: the end of a wait is told by the post's
next event (whatever it is: ``post.publishing``, ``post.published``, another ``post.delayed``...), whose
``data.resumed`` says when the post was delayed and when it went on. ``delay`` and ``resumed`` are null otherwise.
A post that does not go on ends with ``post.failed`` (its deadline passed) or ``post.cancelled``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from chronogram.contracts import ErrorType
from chronogram.enums import AccountStatusReason, DelayReason, NotificationType, PostStatus

PAYLOAD_VERSION = 1

# What a user is emailed about when they have not chosen (GET /v1/notification-settings).
DEFAULT_EMAIL_TYPES: tuple[NotificationType, ...] = (
    NotificationType.POST_FAILED,
    NotificationType.POST_FIRST_COMMENT_FAILED,
    NotificationType.ACCOUNT_NEEDS_RECONNECT,
    NotificationType.WEBHOOK_DISABLED,
)

# Types a client may subscribe a webhook to (webhook.test is sent to the endpoint that asked for it only).
SUBSCRIBABLE_TYPES: tuple[NotificationType, ...] = tuple(
    t for t in NotificationType if t is not NotificationType.WEBHOOK_TEST
)

POST_STATUS_TYPES: Mapping[PostStatus, NotificationType] = {
    PostStatus.SCHEDULED: NotificationType.POST_SCHEDULED,
    PostStatus.PUBLISHING: NotificationType.POST_PUBLISHING,
    PostStatus.PUBLISHED: NotificationType.POST_PUBLISHED,
    PostStatus.FAILED: NotificationType.POST_FAILED,
    PostStatus.CANCELLED: NotificationType.POST_CANCELLED,
}

# What the user can do about each error, in the payload next to the code and message.
_ADVICE: Mapping[ErrorType, str] = {
    ErrorType.GRAPH_AUTH: "Reconnect the Instagram account (POST /v1/accounts with a new token), then retry the "
    "post (POST /v1/posts/{id}/retry).",
    ErrorType.GRAPH_INVALID_REQUEST: "Instagram refused the post as it is: edit it (caption, tags, media) and "
    "schedule it again.",
    ErrorType.INVALID_MEDIA: "Instagram cannot use this media: upload a file within Instagram's limits and "
    "schedule the post again.",
    ErrorType.MEDIA_REJECTED: "The media cannot be published as it is: upload a file within Instagram's limits "
    "and schedule the post again.",
    ErrorType.CONTAINER_UNUSABLE: "Instagram could not process the media: retry the post, or upload it again.",
    ErrorType.PUBLISH_QUOTA_REACHED: "The account reached Instagram's daily publishing limit: retry the post "
    "later.",
    ErrorType.PUBLISH_OUTCOME_UNKNOWN: "Check the account on Instagram before retrying: the post may be live.",
    ErrorType.POST_NOT_FOUND: "The post was deleted while it was being published: nothing to do.",
    ErrorType.FIRST_COMMENT_REFUSED: "The post is live without its first comment: post it yourself on "
    "Instagram if you still want it.",
}
_DEFAULT_ADVICE = (
    "Retry the post (POST /v1/posts/{id}/retry); if it fails again, contact support with its id."
)


def new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def envelope(
    *, event_id: str, type: NotificationType, occurred_at: datetime, data: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": type.value,
        "version": PAYLOAD_VERSION,
        "occurred_at": _iso(occurred_at),
        "data": dict(data),
    }


def error_data(code: ErrorType | str | None, message: str | None, *, post_id: int) -> dict[str, Any] | None:
    if code is None and not message:
        return None
    known = ErrorType(code) if code is not None else None
    advice = _ADVICE.get(known, _DEFAULT_ADVICE) if known is not None else _DEFAULT_ADVICE
    return {
        "code": known.value if known is not None else None,
        "message": message,
        "what_to_do": advice.replace("{id}", str(post_id)),
    }


def post_data(
    post: Mapping[str, Any],
    *,
    sequence: int,
    previous_status: PostStatus | None,
    message: str,
    error: dict[str, Any] | None,
    delay: dict[str, Any] | None = None,
    resumed: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``data`` of a post's event, from its row as it is after the change (columns listed in
    chronogram.notifications.outbox)."""
    publish_at: datetime = post["publish_at"]
    published_at: datetime | None = post["published_at"]
    lag = (published_at - publish_at).total_seconds() if published_at is not None else None
    return {
        "post_id": post["id"],
        "account_id": post["account_id"],
        "post_type": str(post["type"]),
        "status": str(post["status"]),
        "previous_status": previous_status.value if previous_status is not None else None,
        "sequence": sequence,
        "publish_at": _iso(publish_at),
        "published_at": _iso(published_at) if published_at is not None else None,
        "lag_seconds": round(lag, 3) if lag is not None else None,
        "ig_media_id": post["ig_media_id"],
        "permalink": post["permalink"],
        "message": message,
        "error": error,
        "delay": delay,
        "resumed": resumed,
    }


def delay_data(*, reason: DelayReason, since: datetime, deadline: str | None) -> dict[str, Any]:
    """``data.delay`` of post.delayed: why the post waits, since when, and its deadline (ISO 8601, or None if it
    has none), past which it fails rather than go out late."""
    return {"reason": reason.value, "since": _iso(since), "deadline": deadline}


def resumed_data(*, delayed_since: datetime, resumed_at: datetime) -> dict[str, Any]:
    """``data.resumed`` of the event after a delay's end."""
    return {
        "delayed_since": _iso(delayed_since),
        "resumed_at": _iso(resumed_at),
        "delayed_seconds": round(max((resumed_at - delayed_since).total_seconds(), 0.0), 3),
    }


def delay_advice(reason: DelayReason, *, post_id: int) -> str:
    if reason is DelayReason.ACCOUNT_NEEDS_RECONNECT:
        return (
            "Reconnect the Instagram account (POST /v1/accounts with a new token) before the deadline: the post "
            "then goes on by itself. Past the deadline it fails."
        )
    return (
        f"Nothing to do: post {post_id} is published as soon as the service answers again, until its deadline; "
        "past it the post fails."
    )


_RECONNECT_ADVICE = (
    "Reconnect the Instagram account (POST /v1/accounts with a new token): its posts waiting for it go on, and "
    "new posts on it are accepted again."
)


def account_data(
    *,
    account_id: int,
    username: str,
    status: str,
    reason: AccountStatusReason | None = None,
    token_expires_at: datetime | None = None,
    message: str = "",
) -> dict[str, Any]:
    """The ``data`` of account.needs_reconnect and account.token_refreshed (written by the outbox's account
    observer): the account, its status and why, when its access ends, never the token itself."""
    error = None
    if status == "needs_reconnect":
        error = {
            "code": reason.value if reason is not None else None,
            "message": message,
            "what_to_do": _RECONNECT_ADVICE,
        }
    return {
        "account_id": account_id,
        "username": username,
        "status": status,
        "reason": reason.value if reason is not None else None,
        "token_expires_at": _iso(token_expires_at) if token_expires_at is not None else None,
        "message": message,
        "error": error,
    }


def webhook_disabled_data(*, endpoint_id: int, url: str, reason: str) -> dict[str, Any]:
    return {"webhook_id": endpoint_id, "url": url, "reason": reason}


def test_data(*, endpoint_id: int) -> dict[str, Any]:
    return {
        "webhook_id": endpoint_id,
        "message": "a test event, sent on request (POST /v1/webhooks/{id}/test)",
    }


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
