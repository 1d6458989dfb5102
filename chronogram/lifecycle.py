"""The one owner of a post's life: every change of its status, and the one event each change yields.

Everything that moves a post from one status to another (the API's crud, the store and Instagram activities, the
reconciler, the command line) calls a named transition here. Each is checked against ``TRANSITIONS``: an illegal
one raises :class:`IllegalTransition` and writes nothing. A legal one writes the status and exactly one
``post_events`` row in the caller's transaction, and tells every observer (``observe``) inside that transaction,
so that a feature which must hear of every change (an outbox of notifications, metrics) subscribes here once and
no caller knows about it.

Idempotent under retries: a transition carries a dedupe key (formats below, and nowhere else); if the event with
that key is already recorded, the transition was applied by an earlier attempt and nothing is written again.

Also here: the other rows a post's life adds (events without a status change, a reschedule, the Instagram ids
publishing stores), so that a post's row is written from this module and from the crud of its content only.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypedDict, Unpack

from sqlalchemy import Connection, bindparam, exists, func, select, update

from chronogram.contracts import ErrorType, FinishInput
from chronogram.enums import EventKind, PostStatus
from chronogram.models import Post, PostEvent, PostMedia, table_of

_POSTS = table_of(Post)
_EVENTS = table_of(PostEvent)
_POST_MEDIA = table_of(PostMedia)


class Transition(StrEnum):
    """The named changes of a post's status. A new status (e.g. draft, or delayed while an account reconnects)
    comes with its transitions here and nowhere else."""

    SCHEDULE = "schedule"  # a new post: (none) -> scheduled
    SAVE_DRAFT = "save_draft"  # a new post saved as a draft: (none) -> draft, no workflow
    SCHEDULE_DRAFT = "schedule_draft"  # a draft is scheduled: its workflow starts
    BEGIN_PUBLISHING = "begin_publishing"  # the workflow's publish time came (or publish-now)
    PUBLISH = "publish"
    FAIL = "fail"
    CANCEL = "cancel"
    RETRY = "retry"  # a failed post gets a fresh workflow run
    # Its workflow run ended without finishing the post (an operator terminated it, or it timed out): a fresh
    # run takes over, and finds out from Instagram whatever the dead one did.
    RESTART = "restart"
    # Publishing began a little ahead of the publish time and media_publish is held until it (burst-proof
    # publishing, workflows/scheduled_post.py): a cancel or a reschedule that reaches the held call before it is
    # sent ends the post cancelled, or puts it back to scheduled at its new time. Nothing was sent to Instagram.
    WITHDRAW = "withdraw"
    RELEASE = "release"


@dataclass(frozen=True)
class Rule:
    sources: tuple[PostStatus | None, ...]  # the likeliest first; None: the post is being created
    target: PostStatus


TRANSITIONS: Mapping[Transition, Rule] = {
    Transition.SCHEDULE: Rule((None,), PostStatus.SCHEDULED),
    Transition.SAVE_DRAFT: Rule((None,), PostStatus.DRAFT),
    Transition.SCHEDULE_DRAFT: Rule((PostStatus.DRAFT,), PostStatus.SCHEDULED),
    Transition.BEGIN_PUBLISHING: Rule((PostStatus.SCHEDULED,), PostStatus.PUBLISHING),
    Transition.PUBLISH: Rule((PostStatus.PUBLISHING,), PostStatus.PUBLISHED),
    # A scheduled post fails without publishing when it cannot be published at all (its run fails before it
    # began publishing, e.g. its account is gone).
    Transition.FAIL: Rule((PostStatus.PUBLISHING, PostStatus.SCHEDULED), PostStatus.FAILED),
    Transition.CANCEL: Rule((PostStatus.SCHEDULED,), PostStatus.CANCELLED),
    Transition.RETRY: Rule((PostStatus.FAILED,), PostStatus.SCHEDULED),
    Transition.RESTART: Rule((PostStatus.PUBLISHING, PostStatus.SCHEDULED), PostStatus.SCHEDULED),
    Transition.WITHDRAW: Rule((PostStatus.PUBLISHING,), PostStatus.CANCELLED),
    Transition.RELEASE: Rule((PostStatus.PUBLISHING,), PostStatus.SCHEDULED),
}

# The status graph the named transitions make: scheduled -> publishing -> published | failed; scheduled ->
# cancelled | failed; failed -> scheduled; publishing | scheduled -> scheduled (a fresh run, or a held publish
# rescheduled); publishing -> cancelled (a held publish withdrawn before its call); draft -> scheduled. Published
# and cancelled are final. A draft may also be deleted (api.crud.posts.delete_draft): no status, no event, as it
# never had a workflow.
STATUS_TRANSITIONS: Mapping[PostStatus, frozenset[PostStatus]] = {
    status: frozenset(rule.target for rule in TRANSITIONS.values() if status in rule.sources)
    for status in PostStatus
}
TERMINAL_STATUSES: frozenset[PostStatus] = frozenset(
    s for s, targets in STATUS_TRANSITIONS.items() if not targets
)


def transition_to(target: PostStatus) -> Transition:
    """The transition that ends in ``target`` from a post already recorded (the workflow's endings)."""
    return next(
        name
        for name, rule in TRANSITIONS.items()
        if rule.target is target and None not in rule.sources and PostStatus.DRAFT not in rule.sources
    )


class IllegalTransition(Exception):
    """The post's current status does not allow the transition; nothing was written."""

    def __init__(self, post_id: int, transition: Transition, current: PostStatus | None) -> None:
        shown = current.value if current is not None else "missing"
        super().__init__(f"post {post_id} cannot {transition.value.replace('_', ' ')}: it is {shown}")
        self.post_id = post_id
        self.transition = transition
        self.current = current


class PostMissing(Exception):
    """The post does not exist (deleted under a running workflow, or never recorded)."""

    def __init__(self, post_id: int) -> None:
        super().__init__(f"post {post_id} does not exist")
        self.post_id = post_id


# --- dedupe keys: every format, here alone ------------------------------------------------------------------


class DedupeKey:
    """Keys that make recording an event idempotent (post_events.dedupe_key is unique)."""

    WORKFLOW_STARTED_PREFIX = "workflow-started:"

    @staticmethod
    def created(post_id: int) -> str:
        return f"created:{post_id}"

    @staticmethod
    def draft_scheduled(post_id: int) -> str:
        # Once per post: a draft is scheduled once, and a repeated request finds the event recorded.
        return f"draft-scheduled:{post_id}"

    @staticmethod
    def retry(post_id: int) -> str:
        # Each retry is a new intent of its own, even of the same post.
        return f"retry:{post_id}:{uuid.uuid4().hex}"

    @staticmethod
    def workflow_started(post_id: int, run_id: str) -> str:
        return f"{DedupeKey.WORKFLOW_STARTED_PREFIX}{post_id}:{run_id}"

    @staticmethod
    def run_event(run_id: str, sequence: int) -> str:
        """The ``sequence``-th event a workflow run recorded (its transitions, refusals, reschedules, errors)."""
        return f"{run_id}:{sequence}"

    @staticmethod
    def restart(run_id: str) -> str:
        """A fresh run taking over from the run ``run_id``, which ended without finishing the post: once per run."""
        return f"restart:{run_id}"

    @staticmethod
    def cancel_requested(run_id: str) -> str:
        """The run ``run_id`` ended on a cancellation requested through Temporal (not the API)."""
        return f"cancel-requested:{run_id}"

    @staticmethod
    def run_ending(run_id: str, status: PostStatus) -> str:
        # Per run: a retried post may fail again, and that second failure is an event of its own.
        return f"finish:{run_id}:{status.value}"


# --- observers ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusChange:
    """What an observer hears: one applied transition, inside the transaction that wrote it."""

    post_id: int
    transition: Transition
    from_status: PostStatus | None
    to_status: PostStatus
    occurred_at: datetime
    message: str
    error_code: ErrorType | None = None


Observer = Callable[[Connection, StatusChange], None]
_observers: list[Observer] = []


def observe(observer: Observer) -> Callable[[], None]:
    """Call ``observer`` for every transition applied from now on, in the transition's transaction (so that what
    it writes commits or rolls back with the change). Returns the function that unsubscribes it."""
    _observers.append(observer)
    return lambda: _observers.remove(observer)


class Note(StrEnum):
    """The events without a status change that observers hear of too (``observe_notes``)."""

    RESCHEDULED = "rescheduled"  # the post's publish time moved
    FIRST_COMMENT_FAILED = "first_comment_failed"  # published, but its first comment could not be posted
    # The post began waiting, past or before its time: an outage (its retries ran out), or its account's token
    # refused and a reconnect awaited. Its workflow records one per wait; a wait inside a wait adds one more.
    DELAYED = "delayed"
    RESUMED = "resumed"  # the wait ended: the service answered again, or the account was reconnected


@dataclass(frozen=True)
class PostNote:
    """What a note observer hears: one such event, inside the transaction that recorded it."""

    post_id: int
    note: Note
    occurred_at: datetime
    message: str
    error_code: ErrorType | None = None
    # What the event's writer added to its detail (a delay's reason and deadline), besides the message.
    detail: Mapping[str, Any] | None = None


NoteObserver = Callable[[Connection, PostNote], None]
_note_observers: list[NoteObserver] = []


def observe_notes(observer: NoteObserver) -> Callable[[], None]:
    """``observe`` for the events of ``Note``: each recorded event, once, in its transaction."""
    _note_observers.append(observer)
    return lambda: _note_observers.remove(observer)


# --- the one event constructor -------------------------------------------------------------------------------


def event_row(
    *,
    post_id: int,
    kind: EventKind,
    message: str,
    dedupe_key: str | None,
    from_status: PostStatus | None = None,
    to_status: PostStatus | None = None,
    error_code: ErrorType | None = None,
    occurred_at: datetime | None = None,
    detail: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A post_events row, as values for an insert. Only a transition carries statuses; an error keeps its message
    in error_message too."""
    return {
        "post_id": post_id,
        "occurred_at": occurred_at or _now(),
        "kind": kind,
        "from_status": from_status if kind is EventKind.TRANSITION else None,
        "to_status": to_status if kind is EventKind.TRANSITION else None,
        "error_code": error_code,
        "error_message": message if kind is EventKind.ERROR else None,
        "detail": {"message": message, **(detail or {})},
        "dedupe_key": dedupe_key,
    }


# --- transitions ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scheduled:
    post_id: int
    # The "created" event's id: the post's scheduling intent (api.crud.workflow_starts records workflow starts against it).
    intent_id: int


# Built once: a statement built per call costs more than the unit of work it replaces (bench/README.md).
_INSERT_POST = _POSTS.insert()
_INSERT_EVENT = _EVENTS.insert()


def schedule(connection: Connection, *, post: Mapping[str, Any], message: str = "created") -> Scheduled:
    """Record a new post (its column values, without status or id) as scheduled, with its "created" event."""
    result = connection.execute(_INSERT_POST, {**post, "status": PostStatus.SCHEDULED})
    key = result.inserted_primary_key
    assert key is not None
    post_id = int(key[0])
    change = _change(post_id, Transition.SCHEDULE, None, message)
    intent_id = _insert_event(connection, change, DedupeKey.created(post_id))
    _notify(connection, change)
    return Scheduled(post_id=post_id, intent_id=intent_id)


def save_draft(connection: Connection, *, post: Mapping[str, Any], message: str = "saved as draft") -> int:
    """Record a new post (its column values, without status or id) as a draft, with its event; its id."""
    result = connection.execute(_INSERT_POST, {**post, "status": PostStatus.DRAFT})
    key = result.inserted_primary_key
    assert key is not None
    post_id = int(key[0])
    change = _change(post_id, Transition.SAVE_DRAFT, None, message)
    _insert_event(connection, change, DedupeKey.created(post_id))
    _notify(connection, change)
    return post_id


def schedule_draft(connection: Connection, *, post_id: int, publish_at: datetime) -> Scheduled | None:
    """draft -> scheduled at ``publish_at``: the post's scheduling intent, as ``schedule``'s. None if an earlier
    request already scheduled it (IllegalTransition if it is neither a draft nor scheduled from one)."""
    values = {"publish_at": publish_at}
    dedupe_key = DedupeKey.draft_scheduled(post_id)
    if not _apply(connection, post_id, Transition.SCHEDULE_DRAFT, dedupe_key, "scheduled", values=values):
        return None
    intent = connection.execute(select(_EVENTS.c.id).where(_EVENTS.c.dedupe_key == dedupe_key)).scalar_one()
    return Scheduled(post_id=post_id, intent_id=int(intent))


def begin_publishing(
    connection: Connection, post_id: int, dedupe_key: str, *, message: str, publish_at: datetime | None = None
) -> bool:
    """``publish_at`` set: the post goes out now rather than at its time (publish-now), and its time says so."""
    values = {"publish_at": publish_at} if publish_at is not None else None
    return _apply(connection, post_id, Transition.BEGIN_PUBLISHING, dedupe_key, message, values=values)


def publish(
    connection: Connection,
    post_id: int,
    dedupe_key: str,
    *,
    media_id: str | None,
    permalink: str | None,
    publish_at: datetime | None = None,
    published_at: datetime | None = None,
) -> bool:
    """``publish_at``: the time the post went out for, when a publish-now moved it after the post began publishing
    (the date filters then find the post where it was published). ``published_at``: when Instagram answered the
    publish call (the post is marked published after its permalink and first comment, later still in a burst);
    else now."""
    values: dict[str, Any] = {
        "published_at": published_at or _now(),
        "error_code": None,
        "error_message": None,
    }
    if publish_at is not None:
        values["publish_at"] = publish_at
    if media_id:
        values["ig_media_id"] = media_id
    if permalink:
        values["permalink"] = permalink
    return _apply(connection, post_id, Transition.PUBLISH, dedupe_key, "published", values=values)


def fail(
    connection: Connection,
    post_id: int,
    dedupe_key: str,
    *,
    error_code: ErrorType | None,
    message: str | None,
) -> bool:
    values = {"error_code": error_code, "error_message": message}
    return _apply(connection, post_id, Transition.FAIL, dedupe_key, message or "failed", error_code, values)


def cancel(
    connection: Connection, post_id: int, dedupe_key: str, *, reason: str | None, withdrawn: bool = False
) -> bool:
    """``withdrawn``: the post was publishing, its media_publish call held and never sent (publishing -> cancelled)."""
    values = {"error_code": None, "error_message": reason}
    transition = Transition.WITHDRAW if withdrawn else Transition.CANCEL
    message = reason or ("cancelled before its publish call was sent" if withdrawn else "cancelled")
    return _apply(connection, post_id, transition, dedupe_key, message, values=values)


def release(connection: Connection, post_id: int, dedupe_key: str, *, message: str) -> bool:
    """publishing -> scheduled: the post's held media_publish call was withdrawn unsent (it was rescheduled)."""
    return _apply(connection, post_id, Transition.RELEASE, dedupe_key, message)


def end_run(connection: Connection, ending: FinishInput, dedupe_key: str) -> bool:
    """A workflow run's ending: publish, fail or cancel, by the status it ended in."""
    if ending.status is PostStatus.PUBLISHED:
        return publish(
            connection,
            ending.post_id,
            dedupe_key,
            media_id=ending.media_id,
            permalink=ending.permalink,
            publish_at=ending.publish_at,
            published_at=ending.published_at,
        )
    if ending.status is PostStatus.FAILED:
        return fail(
            connection, ending.post_id, dedupe_key, error_code=ending.error_code, message=ending.error_message
        )
    if ending.status is PostStatus.CANCELLED:
        return cancel(
            connection, ending.post_id, dedupe_key, reason=ending.error_message, withdrawn=ending.withdrawn
        )
    raise ValueError(f"a workflow run cannot end {ending.status.value}")


def retry(connection: Connection, *, post_id: int, publish_at: datetime) -> bool:
    """failed -> scheduled, at ``publish_at``, for a fresh workflow run. The error stays in the post's events; on
    the row it would describe a run that is over."""
    values = {"publish_at": publish_at, "error_code": None, "error_message": None}
    return _apply(
        connection, post_id, Transition.RETRY, DedupeKey.retry(post_id), "retry requested", values=values
    )


def restart(connection: Connection, post_id: int, dedupe_key: str, *, reason: str) -> bool:
    """scheduled or publishing -> scheduled, as a new intent (``api.crud.workflow_starts``): a fresh run starts."""
    # Checked first: a restart of a scheduled post leads back to its source, so the UPDATE alone cannot tell that
    # an earlier attempt applied it.
    if connection.execute(select(exists().where(_EVENTS.c.dedupe_key == dedupe_key))).scalar():
        return False
    values = {"error_code": None, "error_message": None}
    return _apply(connection, post_id, Transition.RESTART, dedupe_key, reason, values=values)


# --- events without a status change, and the rows publishing adds ------------------------------------------


class EventDetails(TypedDict, total=False):
    error_code: ErrorType | None
    detail: Mapping[str, Any] | None
    occurred_at: datetime | None


def record_event(
    connection: Connection,
    post_id: int,
    dedupe_key: str | None,
    *,
    kind: EventKind,
    message: str,
    note: Note | None = None,
    **details: Unpack[EventDetails],
) -> bool:
    """An event that changes no status (an edit, a refused signal, an error, a workflow start). False if the event
    with this dedupe key was already recorded. ``note`` set: note observers hear of it."""
    if dedupe_key is not None and _recorded(connection, dedupe_key):
        return False
    row = event_row(post_id=post_id, kind=kind, message=message, dedupe_key=dedupe_key, **details)
    connection.execute(_INSERT_EVENT, row)
    if note is not None:
        _notify_note(
            connection,
            PostNote(
                post_id,
                note,
                row["occurred_at"],
                message,
                error_code=details.get("error_code"),
                detail=details.get("detail"),
            ),
        )
    return True


def record_events(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Many rows from ``event_row`` in one statement (the caller has checked their dedupe keys)."""
    if rows:
        connection.execute(_INSERT_EVENT, list(rows))


def reschedule(
    connection: Connection, post_id: int, dedupe_key: str, *, publish_at: datetime, message: str
) -> bool:
    """The post's publish time moved (its status stays scheduled)."""
    if _recorded(connection, dedupe_key):
        return False
    moved = connection.execute(
        update(_POSTS).where(_POSTS.c.id == post_id).values(publish_at=publish_at, updated_at=_now())
    )
    if moved.rowcount == 0:
        raise PostMissing(post_id)
    row = event_row(post_id=post_id, kind=EventKind.TRANSITION, message=message, dedupe_key=dedupe_key)
    connection.execute(_INSERT_EVENT, row)
    _notify_note(connection, PostNote(post_id, Note.RESCHEDULED, row["occurred_at"], message))
    return True


def record_container(
    connection: Connection, *, post_id: int, position: int | None, container_id: str
) -> None:
    """The Instagram container of one slot: the post's own (``position`` None) or a carousel item's."""
    if position is None:
        statement = update(_POSTS).where(_POSTS.c.id == post_id).values(ig_container_id=container_id)
    else:
        statement = (
            update(_POST_MEDIA)
            .where(_POST_MEDIA.c.post_id == post_id, _POST_MEDIA.c.position == position)
            .values(ig_container_id=container_id)
        )
    if connection.execute(statement).rowcount == 0:
        raise PostMissing(post_id)


_SAVE_PUBLISH_CALL = (
    update(_POSTS).where(_POSTS.c.id == bindparam("post")).values(last_publish_call=bindparam("call"))
)


def record_publish_calls(connection: Connection, calls: Sequence[tuple[int, str]]) -> set[int]:
    """Media_publish calls are about to be sent (each ``(post id, "<run id>/<attempt>")``), in one statement
    however many: committed before the calls, so that a publish attempt whose worker died reads back whether its
    call can have reached Instagram. Returns the posts that no longer exist (their calls must not be sent)."""
    if not calls:
        return set()
    connection.execute(_SAVE_PUBLISH_CALL, [{"post": post_id, "call": call} for post_id, call in calls])
    wanted = {post_id for post_id, _call in calls}
    found = set(connection.execute(select(_POSTS.c.id).where(_POSTS.c.id.in_(wanted))).scalars())
    return wanted - found


_COUNT_FIRST_COMMENT_CALL = (
    update(_POSTS)
    .where(_POSTS.c.id == bindparam("post"))
    .values(first_comment_calls=func.coalesce(_POSTS.c.first_comment_calls, 0) + 1)
)


def record_first_comment_calls(connection: Connection, post_ids: Sequence[int]) -> None:
    """First-comment calls are about to be sent, one for each post of ``post_ids``: counted before they are, so
    that a later attempt knows whether an earlier one can have left the comment (then it looks for it first). An
    unknown count (None: a row made before it) becomes 1, which is looked for as well."""
    if post_ids:
        connection.execute(_COUNT_FIRST_COMMENT_CALL, [{"post": post_id} for post_id in post_ids])


# Built once: it runs for every post at its publish time.
_SAVE_PUBLISHED = {
    column: update(_POSTS).where(_POSTS.c.id == bindparam("post")).values({column: bindparam("value")})
    for column in ("ig_media_id", "permalink", "ig_first_comment_id")
}


def record_many_published(connection: Connection, column: str, values: Sequence[tuple[int, str]]) -> None:
    """What Instagram gave back while publishing, for many posts in one statement: one column (``ig_media_id``, the
    proof of publication, stored before anything else can fail; ``permalink``; ``ig_first_comment_id``) and
    ``(post id, value)`` each."""
    if values:
        connection.execute(
            _SAVE_PUBLISHED[column], [{"post": post_id, "value": value} for post_id, value in values]
        )


# --- internals ------------------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _change(
    post_id: int,
    transition: Transition,
    current: PostStatus | None,
    message: str,
    error_code: ErrorType | None = None,
) -> StatusChange:
    return StatusChange(
        post_id=post_id,
        transition=transition,
        from_status=current,
        to_status=TRANSITIONS[transition].target,
        occurred_at=_now(),
        message=message,
        error_code=error_code,
    )


def _apply(
    connection: Connection,
    post_id: int,
    transition: Transition,
    dedupe_key: str,
    message: str,
    error_code: ErrorType | None = None,
    values: Mapping[str, Any] | None = None,
) -> bool:
    """Move the post along ``transition`` with one conditional UPDATE and record its event; False if an earlier
    attempt with the same dedupe key already did."""
    rule = TRANSITIONS[transition]
    current: PostStatus | None = None
    # One conditional UPDATE per possible source, the likeliest first: the status can only have moved here if no
    # earlier attempt did, since no transition but RESTART (which checks its key first) leads back to one of its
    # sources.
    for source in rule.sources:
        if source is None:
            continue
        moved = connection.execute(
            update(_POSTS)
            .where(_POSTS.c.id == post_id, _POSTS.c.status == source)
            .values(status=rule.target, updated_at=_now(), **(values or {}))
        )
        if moved.rowcount == 1:
            current = source
            break
    if current is None:
        row = connection.execute(
            select(_POSTS.c.status, exists().where(_EVENTS.c.dedupe_key == dedupe_key)).where(
                _POSTS.c.id == post_id
            )
        ).first()
        if row is None:
            raise PostMissing(post_id)
        if row[1]:
            return False  # a retry of an attempt that committed
        raise IllegalTransition(post_id, transition, PostStatus(row[0]))
    change = _change(post_id, transition, current, message, error_code)
    _insert_event(connection, change, dedupe_key)
    _notify(connection, change)
    return True


def _insert_event(connection: Connection, change: StatusChange, dedupe_key: str) -> int:
    result = connection.execute(
        _INSERT_EVENT,
        event_row(
            post_id=change.post_id,
            kind=EventKind.TRANSITION,
            message=change.message,
            dedupe_key=dedupe_key,
            from_status=change.from_status,
            to_status=change.to_status,
            error_code=change.error_code,
            occurred_at=change.occurred_at,
        ),
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _notify(connection: Connection, change: StatusChange) -> None:
    for observer in tuple(_observers):
        observer(connection, change)


def _notify_note(connection: Connection, note: PostNote) -> None:
    for observer in tuple(_note_observers):
        observer(connection, note)


def _recorded(connection: Connection, dedupe_key: str) -> bool:
    return (
        connection.execute(select(_EVENTS.c.id).where(_EVENTS.c.dedupe_key == dedupe_key)).first() is not None
    )
