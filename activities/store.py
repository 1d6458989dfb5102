"""Database activities: the post's status transitions and its audit trail, idempotent under retries."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from temporalio import activity

from activities.media import media_kind
from activities.rows import load_post, post_media
from chronogram.contracts import EventRecord, FinishInput, PlannedMedia, PostRef, PublishPlan
from chronogram.enums import EventKind, PostStatus
from chronogram.models import PostEvent


class PostStore:
    """Blocking (SQLAlchemy): registered with the worker's thread pool."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn
    def load_plan(self, request: PostRef) -> PublishPlan:
        with Session(self._engine) as session:
            post = load_post(session, request.post_id)
            rows = post_media(session, request.post_id)
            return PublishPlan(
                post_id=request.post_id,
                account_id=post.account_id,
                post_type=post.type,
                media=[
                    PlannedMedia(position=item.position, media_id=item.media_id, kind=media_kind(asset))
                    for item, asset in rows
                ],
                has_first_comment=bool(post.first_comment),
            )

    @activity.defn
    def begin_publishing(self, event: EventRecord) -> None:
        with Session(self._engine) as session:
            post = load_post(session, event.post_id)
            if post.status is not PostStatus.SCHEDULED:
                return  # a retry of an attempt that committed
            post.status = PostStatus.PUBLISHING
            post.updated_at = _now()
            session.add(post)
            _add_event(session, event)
            session.commit()

    @activity.defn
    def record_event(self, event: EventRecord) -> None:
        with Session(self._engine) as session:
            if event.publish_at is not None:
                post = load_post(session, event.post_id)
                post.publish_at = event.publish_at
                post.updated_at = _now()
                session.add(post)
            _add_event(session, event)
            _commit_once(session)

    @activity.defn
    def finish(self, request: FinishInput) -> None:
        with Session(self._engine) as session:
            post = load_post(session, request.post_id)
            if post.status is request.status:
                return  # a retry of an attempt that committed
            previous = post.status
            post.status = request.status
            post.updated_at = _now()
            if request.status is PostStatus.PUBLISHED:
                post.published_at = post.updated_at
                post.ig_media_id = request.media_id or post.ig_media_id
                post.permalink = request.permalink or post.permalink
                post.error_code = post.error_message = None
            else:
                post.error_code, post.error_message = request.error_code, request.error_message
            session.add(post)
            _add_event(
                session,
                EventRecord(
                    post_id=request.post_id,
                    kind=EventKind.TRANSITION,
                    message=request.error_message or request.status.value,
                    # Per run: a retried post may fail again, and that second failure is an event of its own.
                    dedupe_key=f"finish:{activity.info().workflow_run_id}:{request.status.value}",
                    status_from=previous,
                    status_to=request.status,
                    error_code=request.error_code,
                ),
            )
            session.commit()


def _now() -> datetime:
    return datetime.now(UTC)


def _add_event(session: Session, event: EventRecord) -> None:
    exists = session.exec(select(PostEvent.id).where(PostEvent.dedupe_key == event.dedupe_key)).first()
    if exists is not None:
        return
    session.add(
        PostEvent(
            post_id=event.post_id,
            kind=event.kind,
            from_status=event.status_from if event.kind is EventKind.TRANSITION else None,
            to_status=event.status_to,
            error_code=event.error_code,
            error_message=event.message if event.kind is EventKind.ERROR else None,
            detail={"message": event.message},
            dedupe_key=event.dedupe_key,
        )
    )


def _commit_once(session: Session) -> None:
    try:
        session.commit()
    except IntegrityError:
        # Two attempts raced past the existence check; the unique dedupe_key let exactly one in.
        session.rollback()
