"""The transactional outbox: chronogram.lifecycle's observers write one notification_events row per change of a
post, in the change's own transaction, so that an event exists exactly when its change committed (nothing lost
in a crash after the commit, nothing sent for a change rolled back). Delivery reads the rows later
(chronogram.notifications.dispatch); no writer of a post waits on it.

``install()`` subscribes the observers; every process that changes posts calls it at start (the worker, the API,
the command line).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select

from chronogram import lifecycle
from chronogram.enums import NotificationType, PostStatus
from chronogram.lifecycle import Note, PostNote, StatusChange
from chronogram.models import NotificationEvent, Post, table_of
from chronogram.notifications import events

_EVENTS = table_of(NotificationEvent)
_POSTS = table_of(Post)

_POST_COLUMNS = (
    _POSTS.c.id,
    _POSTS.c.owner_id,
    _POSTS.c.account_id,
    _POSTS.c.type,
    _POSTS.c.status,
    _POSTS.c.publish_at,
    _POSTS.c.published_at,
    _POSTS.c.ig_media_id,
    _POSTS.c.permalink,
    _POSTS.c.error_code,
    _POSTS.c.error_message,
)
_SELECT_POST = select(*_POST_COLUMNS).where(_POSTS.c.id == bindparam("post"))
_NEXT_SEQUENCE = select(func.coalesce(func.max(_EVENTS.c.post_sequence), 0) + 1).where(
    _EVENTS.c.post_id == bindparam("post")
)
_INSERT_EVENT = insert(_EVENTS)

_NOTE_TYPES: Mapping[Note, NotificationType] = {
    Note.RESCHEDULED: NotificationType.POST_RESCHEDULED,
    Note.FIRST_COMMENT_FAILED: NotificationType.POST_FIRST_COMMENT_FAILED,
}

_unsubscribe: list[Any] = []


def install() -> None:
    """Subscribe the outbox to every post change; idempotent."""
    if not _unsubscribe:
        _unsubscribe.append(lifecycle.observe(on_status_change))
        _unsubscribe.append(lifecycle.observe_notes(on_note))


def installed() -> bool:
    return bool(_unsubscribe)


def uninstall() -> None:
    while _unsubscribe:
        _unsubscribe.pop()()


def on_status_change(connection: Connection, change: StatusChange) -> None:
    if change.to_status not in events.POST_STATUS_TYPES:
        return  # a draft is private to its owner until it is scheduled (post.scheduled)
    error = None
    if change.error_code is not None or change.to_status is PostStatus.FAILED:
        error = events.error_data(change.error_code, change.message, post_id=change.post_id)
    _record_post_event(
        connection,
        change.post_id,
        events.POST_STATUS_TYPES[change.to_status],
        occurred_at=change.occurred_at,
        previous_status=change.from_status,
        message=change.message,
        error=error,
    )


def on_note(connection: Connection, note: PostNote) -> None:
    error = None
    if note.note is Note.FIRST_COMMENT_FAILED:
        error = events.error_data(note.error_code, note.message, post_id=note.post_id)
    _record_post_event(
        connection,
        note.post_id,
        _NOTE_TYPES[note.note],
        occurred_at=note.occurred_at,
        previous_status=None,
        message=note.message,
        error=error,
    )


def emit(
    connection: Connection,
    *,
    owner_id: int,
    type: NotificationType,
    data: Mapping[str, Any],
    occurred_at: datetime | None = None,
    dispatched: bool = False,
) -> int:
    """An event of no post (an account's, a webhook's), in the caller's transaction; its row id. ``dispatched``:
    the caller makes its deliveries itself (a test ping), the dispatcher leaves it alone."""
    when = occurred_at or datetime.now(UTC)
    event_id = events.new_event_id()
    result = connection.execute(
        _INSERT_EVENT,
        {
            "event_id": event_id,
            "owner_id": owner_id,
            "type": type,
            "post_id": None,
            "post_sequence": None,
            "occurred_at": when,
            "payload": events.envelope(event_id=event_id, type=type, occurred_at=when, data=data),
            "dispatched_at": when if dispatched else None,
        },
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _record_post_event(
    connection: Connection,
    post_id: int,
    type: NotificationType,
    *,
    occurred_at: datetime,
    previous_status: Any,
    message: str,
    error: dict[str, Any] | None,
) -> None:
    post = connection.execute(_SELECT_POST, {"post": post_id}).mappings().first()
    if post is None:
        return  # the change itself raises PostMissing
    # The post's row is locked by the change being recorded (every change updates it), so that two changes of one
    # post cannot take the same number.
    sequence = int(connection.execute(_NEXT_SEQUENCE, {"post": post_id}).scalar_one())
    event_id = events.new_event_id()
    data = events.post_data(
        dict(post), sequence=sequence, previous_status=previous_status, message=message, error=error
    )
    connection.execute(
        _INSERT_EVENT,
        {
            "event_id": event_id,
            "owner_id": post["owner_id"],
            "type": type,
            "post_id": post_id,
            "post_sequence": sequence,
            "occurred_at": occurred_at,
            "payload": events.envelope(event_id=event_id, type=type, occurred_at=occurred_at, data=data),
            "dispatched_at": None,
        },
    )
