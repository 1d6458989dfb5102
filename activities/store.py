"""Database activities of a post's workflow: its plan, its status transitions and its events, each through
chronogram.lifecycle and idempotent under retries."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import Connection, Engine, func
from sqlmodel import Session, col, select
from temporalio import activity

from activities.rows import post_with_media, refused_transition
from chronogram import lifecycle
from chronogram.contracts import (
    DEFAULT_MAX_LATENESS_SECONDS,
    EventKind,
    EventRecord,
    FinishInput,
    PlannedMedia,
    PostRef,
    PostStoreInterface,
    PublishPlan,
)
from chronogram.enums import PostStatus
from chronogram.lifecycle import DedupeKey, IllegalTransition, PostMissing
from chronogram.models import InstagramAccount, Post
from chronogram.observability.logs import remember_account

# Posts due within this much of each other are counted as due together (PublishPlan.due_together).
_DUE_TOGETHER_WINDOW = timedelta(seconds=1)


class PostStore(PostStoreInterface):
    """Blocking (SQLAlchemy): registered with the worker's thread pool."""

    def __init__(
        self,
        engine: Engine,
        default_max_lateness_seconds: int = DEFAULT_MAX_LATENESS_SECONDS,
        publish_task_queue: str | None = None,
    ) -> None:
        self._engine = engine
        self._default_max_lateness = default_max_lateness_seconds
        self._publish_task_queue = publish_task_queue

    @activity.defn
    def load_plan(self, request: PostRef) -> PublishPlan:
        with Session(self._engine) as session:
            post, rows = post_with_media(session, request.post_id)
            remember_account(request.post_id, post.account_id)
            account_lateness = session.exec(
                select(InstagramAccount.max_lateness_seconds).where(InstagramAccount.id == post.account_id)
            ).first()
            lateness = next(
                value
                for value in (post.max_lateness_seconds, account_lateness, self._default_max_lateness)
                if value is not None
            )
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
                due_together=session.exec(
                    select(func.count())
                    .select_from(Post)
                    .where(
                        col(Post.status).in_((PostStatus.SCHEDULED, PostStatus.PUBLISHING)),
                        col(Post.publish_at) >= post.publish_at - _DUE_TOGETHER_WINDOW,
                        col(Post.publish_at) <= post.publish_at + _DUE_TOGETHER_WINDOW,
                    )
                ).one(),
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
                lifecycle.record_event(
                    connection,
                    event.post_id,
                    key,
                    kind=event.kind,
                    message=event.message,
                    note=_note(event),
                    error_code=event.error_code,
                )

    @activity.defn
    def finish(self, request: FinishInput) -> None:
        with _transaction(self._engine) as connection:
            lifecycle.end_run(connection, request, DedupeKey.run_ending(_run_id(), request.status))


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


# How the post's workflow words the error of a first comment that could not be posted (it records no other sign).
FIRST_COMMENT_FAILED_PREFIX = "first comment failed:"


def _note(event: EventRecord) -> lifecycle.Note | None:
    if event.kind is EventKind.ERROR and event.message.startswith(FIRST_COMMENT_FAILED_PREFIX):
        return lifecycle.Note.FIRST_COMMENT_FAILED
    return None


def _run_id() -> str:
    run_id = activity.info().workflow_run_id
    assert run_id, "the store's activities run for a workflow"
    return run_id
