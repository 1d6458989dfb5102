"""The transactional outbox: chronogram.lifecycle's observers write one notification_events row per change of a
post (and chronogram.accounts' one per account event that clients hear of), in the change's own transaction, so that an event exists exactly when its change committed (nothing lost
in a crash after the commit, nothing sent for a change rolled back). Delivery reads the rows later
(chronogram.notifications.dispatch); no writer of a post waits on it.

``install()`` subscribes the observers; every process that changes posts calls it at start (the worker, the API,
the command line).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select

from chronogram import accounts, lifecycle
from chronogram.accounts import AccountChange
from chronogram.contracts import ErrorType
from chronogram.enums import (
    AccountEventKind,
    AccountStatus,
    AccountStatusReason,
    DelayReason,
    NotificationType,
    PostStatus,
)
from chronogram.lifecycle import Note, PostNote, StatusChange
from chronogram.models import InstagramAccount, NotificationEvent, Post, PostEvent, table_of
from chronogram.notifications import events

_EVENTS = table_of(NotificationEvent)
_POSTS = table_of(Post)
_POST_EVENTS = table_of(PostEvent)
_ACCOUNTS = table_of(InstagramAccount)

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
# A delay episode: the post's last post.delayed, the events since, and its workflow's resumes.
_LAST_DELAYED = (
    select(_EVENTS.c.post_sequence, _EVENTS.c.occurred_at)
    .where(_EVENTS.c.post_id == bindparam("post"), _EVENTS.c.type == NotificationType.POST_DELAYED)
    .order_by(_EVENTS.c.post_sequence.desc())
    .limit(1)
)
_EVENTS_AFTER = select(_EVENTS.c.type, _EVENTS.c.payload).where(
    _EVENTS.c.post_id == bindparam("post"), _EVENTS.c.post_sequence > bindparam("sequence")
)
_RESUMES = select(_POST_EVENTS.c.occurred_at).where(
    _POST_EVENTS.c.post_id == bindparam("post"), _POST_EVENTS.c.error_code == ErrorType.PUBLISH_RESUMED
)
_STATUS_TYPES = frozenset(events.POST_STATUS_TYPES.values())
_SELECT_ACCOUNT = select(
    _ACCOUNTS.c.owner_id, _ACCOUNTS.c.username, _ACCOUNTS.c.status, _ACCOUNTS.c.token_expires_at
).where(_ACCOUNTS.c.id == bindparam("account"))

_NOTE_TYPES: Mapping[Note, NotificationType] = {
    Note.RESCHEDULED: NotificationType.POST_RESCHEDULED,
    Note.FIRST_COMMENT_FAILED: NotificationType.POST_FIRST_COMMENT_FAILED,
    Note.DELAYED: NotificationType.POST_DELAYED,
}
_ACCOUNT_TYPES: Mapping[AccountEventKind, NotificationType] = {
    AccountEventKind.NEEDS_RECONNECT: NotificationType.ACCOUNT_NEEDS_RECONNECT,
    AccountEventKind.TOKEN_REFRESHED: NotificationType.ACCOUNT_TOKEN_REFRESHED,
}

_unsubscribe: list[Any] = []


def install() -> None:
    """Subscribe the outbox to every post change and account event; idempotent."""
    if not _unsubscribe:
        _unsubscribe.append(lifecycle.observe(on_status_change))
        _unsubscribe.append(lifecycle.observe_notes(on_note))
        _unsubscribe.append(accounts.observe(on_account_change))


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
    # A new post has no delay behind it.
    delays = _delay_state(connection, change.post_id) if change.from_status is not None else _NO_DELAY
    _record_post_event(
        connection,
        change.post_id,
        events.POST_STATUS_TYPES[change.to_status],
        occurred_at=change.occurred_at,
        previous_status=change.from_status,
        message=change.message,
        error=error,
        resumed=delays.resumed,
    )


def on_note(connection: Connection, note: PostNote) -> None:
    if note.note is Note.RESUMED:
        return  # told by the post's next event (its data.resumed)
    delays = _delay_state(connection, note.post_id)
    error = None
    delay = None
    if note.note is Note.FIRST_COMMENT_FAILED:
        error = events.error_data(note.error_code, note.message, post_id=note.post_id)
    elif note.note is Note.DELAYED:
        if delays.open:
            return  # a wait inside a wait (an outage, then the token refused): one post.delayed per episode
        detail = note.detail or {}
        reason = DelayReason(detail.get("delay_reason", DelayReason.SERVICE_UNAVAILABLE))
        delay = events.delay_data(reason=reason, since=note.occurred_at, deadline=detail.get("deadline"))
        error = {
            "code": note.error_code.value if note.error_code is not None else None,
            "message": note.message,
            "what_to_do": events.delay_advice(reason, post_id=note.post_id),
        }
    _record_post_event(
        connection,
        note.post_id,
        _NOTE_TYPES[note.note],
        occurred_at=note.occurred_at,
        previous_status=None,
        message=note.message,
        error=error,
        delay=delay,
        resumed=delays.resumed,
    )


def on_account_change(connection: Connection, change: AccountChange) -> None:
    type = _ACCOUNT_TYPES.get(change.kind)
    if type is None:
        return
    account = connection.execute(_SELECT_ACCOUNT, {"account": change.account_id}).first()
    if account is None:
        return
    emit(
        connection,
        owner_id=account.owner_id,
        type=type,
        occurred_at=change.occurred_at,
        data=events.account_data(
            account_id=change.account_id,
            username=account.username,
            status=AccountStatus(account.status).value,
            reason=AccountStatusReason(change.reason) if change.reason is not None else None,
            token_expires_at=change.token_expires_at or _aware(account.token_expires_at),
            message=change.message,
        ),
    )


@dataclass(frozen=True)
class _DelayState:
    """Where the post stands with delays: whether a post.delayed episode is open (no resume, no change of status
    since), and the end of the last one when no event has told it yet."""

    open: bool
    resumed: dict[str, Any] | None


_NO_DELAY = _DelayState(open=False, resumed=None)


def _delay_state(connection: Connection, post_id: int) -> _DelayState:
    last = connection.execute(_LAST_DELAYED, {"post": post_id}).first()
    if last is None:
        return _NO_DELAY  # the usual case: one indexed read
    since = _aware(last.occurred_at)
    assert since is not None
    later = connection.execute(_EVENTS_AFTER, {"post": post_id, "sequence": last.post_sequence}).all()
    resumes = [
        at for at in (_aware(row) for row in connection.execute(_RESUMES, {"post": post_id}).scalars()) if at
    ]
    resumes = [at for at in resumes if at >= since]
    closed = any(NotificationType(row.type) in _STATUS_TYPES for row in later)
    told = any((row.payload.get("data") or {}).get("resumed") for row in later)
    resumed = None
    if resumes and not told:
        resumed = events.resumed_data(delayed_since=since, resumed_at=max(resumes))
    return _DelayState(open=not closed and not resumes, resumed=resumed)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


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
    delay: dict[str, Any] | None = None,
    resumed: dict[str, Any] | None = None,
) -> None:
    post = connection.execute(_SELECT_POST, {"post": post_id}).mappings().first()
    if post is None:
        return  # the change itself raises PostMissing
    # The post's row is locked by the change being recorded (every change updates it), so that two changes of one
    # post cannot take the same number.
    sequence = int(connection.execute(_NEXT_SEQUENCE, {"post": post_id}).scalar_one())
    event_id = events.new_event_id()
    data = events.post_data(
        dict(post),
        sequence=sequence,
        previous_status=previous_status,
        message=message,
        error=error,
        delay=delay,
        resumed=resumed,
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
