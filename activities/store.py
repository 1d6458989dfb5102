"""Database activities of a post's workflow: its plan, its status transitions and its events, each through
chronogram.lifecycle and idempotent under retries."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, case, func
from sqlmodel import Session, col, select
from temporalio import activity

from activities.group_commit import GroupCommit
from activities.rows import post_with_media, refused_transition
from chronogram import lifecycle
from chronogram.contracts import (
    DEFAULT_MAX_LATENESS_SECONDS,
    ErrorType,
    EventKind,
    EventRecord,
    FinishInput,
    PlannedMedia,
    PostRef,
    PostStoreInterface,
    PublishPlan,
)
from chronogram.enums import DelayReason, PostStatus
from chronogram.lifecycle import DedupeKey, IllegalTransition, PostMissing
from chronogram.models import InstagramAccount, Post
from chronogram.observability.logs import remember_account

# Posts due within this much of each other are counted as due together (PublishPlan.due_together).
_DUE_TOGETHER_WINDOW = timedelta(seconds=1)


@dataclass(frozen=True)
class _Ending:
    request: FinishInput
    dedupe_key: str
    # The activity's context (its info, trace and log fields), in which the ending is written on the group
    # commit's thread: observers, and the outcome's log line at commit, see the activity that ended the run.
    context: contextvars.Context


class PostStore(PostStoreInterface):
    """Blocking (SQLAlchemy) but for ``finish``: the others run in the worker's thread pool."""

    def __init__(
        self,
        engine: Engine,
        default_max_lateness_seconds: int = DEFAULT_MAX_LATENESS_SECONDS,
        publish_task_queue: str | None = None,
        wake_spacing_ms: int | None = None,
        wake_lead_max_seconds: int | None = None,
    ) -> None:
        self._engine = engine
        self._default_max_lateness = default_max_lateness_seconds
        self._publish_task_queue = publish_task_queue
        self._wake_spacing_ms = wake_spacing_ms
        self._wake_lead_max_seconds = wake_lead_max_seconds
        self._endings = GroupCommit(self._write_endings, thread_name="post-endings")

    @activity.defn
    def load_plan(self, request: PostRef) -> PublishPlan:
        with Session(self._engine) as session:
            post, rows = post_with_media(session, request.post_id)
            remember_account(request.post_id, post.account_id)
            lateness = self._lateness(session, post)
            due_together, due_before = _due_together(session, post)
            return PublishPlan(
                post_id=request.post_id,
                account_id=post.account_id,
                post_type=post.type,
                media=[
                    PlannedMedia(position=item.position, media_id=item.media_id, kind=asset.kind)
                    for item, asset in rows
                ],
                has_first_comment=bool(post.first_comment),
                max_lateness_seconds=lateness,
                due_together=due_together,
                due_before=due_before,
                wake_spacing_ms=self._wake_spacing_ms,
                wake_lead_max_seconds=self._wake_lead_max_seconds,
                publish_task_queue=self._publish_task_queue,
            )

    @activity.defn
    def begin_publishing(self, event: EventRecord) -> None:
        with _transaction(self._engine) as connection:
            lifecycle.begin_publishing(
                connection,
                event.post_id,
                _dedupe_key(event),
                message=event.message,
                publish_at=event.publish_at,
            )

    @activity.defn
    def record_event(self, event: EventRecord) -> None:
        with _transaction(self._engine) as connection:
            key = _dedupe_key(event)
            if event.status_from is PostStatus.PUBLISHING and event.status_to is PostStatus.SCHEDULED:
                lifecycle.release(connection, event.post_id, key, message=event.message)
            elif event.publish_at is not None:
                lifecycle.reschedule(
                    connection, event.post_id, key, publish_at=event.publish_at, message=event.message
                )
            else:
                note = _note(event)
                lifecycle.record_event(
                    connection,
                    event.post_id,
                    key,
                    kind=event.kind,
                    message=event.message,
                    note=note,
                    error_code=event.error_code,
                    detail=self._delay_detail(connection, event) if note is lifecycle.Note.DELAYED else None,
                )

    @activity.defn
    async def finish(self, request: FinishInput) -> None:
        """The run's ending, committed together with the other runs' endings of the moment (a burst's posts end
        within seconds of each other): activities.group_commit."""
        key = DedupeKey.run_ending(_run_id(), request.status)
        await self._endings.submit(_Ending(request, key, contextvars.copy_context()))

    def _write_endings(self, endings: Sequence[_Ending]) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = []
        with self._engine.begin() as connection:
            for ending in endings:
                try:
                    ending.context.run(lifecycle.end_run, connection, ending.request, ending.dedupe_key)
                except (PostMissing, IllegalTransition) as error:
                    # Refused before it wrote anything (lifecycle._apply): the other endings go on.
                    outcomes.append(refused_transition(error))
                else:
                    outcomes.append(None)
        return outcomes

    def _lateness(self, session: Session, post: Post) -> int:
        """How late the post may go out: its own setting, else its account's, else the default."""
        account_lateness = session.exec(
            select(InstagramAccount.max_lateness_seconds).where(InstagramAccount.id == post.account_id)
        ).first()
        return next(
            value
            for value in (post.max_lateness_seconds, account_lateness, self._default_max_lateness)
            if value is not None
        )

    def _delay_detail(self, connection: Connection, event: EventRecord) -> dict[str, Any]:
        """What a client needs of a delay besides its message: why, and until when the post keeps waiting (the
        workflow's deadline: publish_at plus its max lateness, at least a minute)."""
        reason = (
            DelayReason.ACCOUNT_NEEDS_RECONNECT
            if event.error_code is ErrorType.GRAPH_AUTH
            else DelayReason.SERVICE_UNAVAILABLE
        )
        with Session(bind=connection) as session:
            post = session.get(Post, event.post_id)
            if post is None:
                return {"delay_reason": reason.value, "deadline": None}
            lateness = max(self._lateness(session, post), DEADLINE_GRACE_SECONDS)
            publish_at = post.publish_at
            if publish_at.tzinfo is None:
                publish_at = publish_at.replace(tzinfo=UTC)
            deadline = publish_at + timedelta(seconds=lateness)
        return {"delay_reason": reason.value, "deadline": deadline.isoformat()}


@contextmanager
def _transaction(engine: Engine) -> Iterator[Connection]:
    """engine.begin(), with the lifecycle's refusals as the ApplicationErrors the workflow branches on."""
    try:
        with engine.begin() as connection:
            yield connection
    except (PostMissing, IllegalTransition) as error:
        raise refused_transition(error) from None


def _dedupe_key(event: EventRecord) -> str:
    # Activity tasks scheduled before the workflow sent sequences carry the key it formatted (the same format).
    if event.sequence is None:
        return event.dedupe_key
    return DedupeKey.run_event(_run_id(), event.sequence)


# How the post's workflow words the error of a first comment that could not be posted (before the code
# FirstCommentRefused, it recorded no other sign).
FIRST_COMMENT_FAILED_PREFIX = "first comment failed:"
# How it words the start of a wait for the account's reconnect (an error event with the code GraphAuthError, like
# other refusals of the token that are no wait).
RECONNECT_WAIT_PREFIX = "waiting for the account to be reconnected"
# The workflow's least lateness (its _ON_TIME_GRACE): a post with none still waits this long past its time.
DEADLINE_GRACE_SECONDS = 60


def _note(event: EventRecord) -> lifecycle.Note | None:
    """The events observers hear of besides the changes of status, from what the workflow recorded."""
    if event.error_code is ErrorType.PUBLISH_DELAYED:
        return lifecycle.Note.DELAYED
    if event.error_code is ErrorType.PUBLISH_RESUMED:
        return lifecycle.Note.RESUMED
    if event.kind is not EventKind.ERROR:
        return None
    if event.error_code is ErrorType.GRAPH_AUTH and event.message.startswith(RECONNECT_WAIT_PREFIX):
        return lifecycle.Note.DELAYED
    if event.error_code is ErrorType.FIRST_COMMENT_REFUSED or event.message.startswith(
        FIRST_COMMENT_FAILED_PREFIX
    ):
        return lifecycle.Note.FIRST_COMMENT_FAILED
    return None


def _run_id() -> str:
    run_id = activity.info().workflow_run_id
    assert run_id, "the store's activities run for a workflow"
    return run_id


def _due_together(session: Session, post: Post) -> tuple[int, int]:
    """How many open posts (this one included) are due within _DUE_TOGETHER_WINDOW of the post, and how many of
    them have a smaller id than it (its rank in a burst)."""
    near = (
        col(Post.status).in_((PostStatus.SCHEDULED, PostStatus.PUBLISHING)),
        col(Post.publish_at) >= post.publish_at - _DUE_TOGETHER_WINDOW,
        col(Post.publish_at) <= post.publish_at + _DUE_TOGETHER_WINDOW,
    )
    earlier = case((col(Post.id) < post.id, 1), else_=0)
    together, before = session.exec(
        select(func.count(), func.coalesce(func.sum(earlier), 0)).where(*near)
    ).one()
    return int(together), int(before)
