"""Database activities: the post's status transitions and its audit trail, idempotent under retries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, exists, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from temporalio import activity

from activities.media import media_kind
from activities.rows import load_post, post_media, post_not_found
from chronogram.contracts import EventRecord, FinishInput, PlannedMedia, PostRef, PublishPlan
from chronogram.enums import EventKind, PostStatus
from chronogram.models import Post, PostEvent, table_of

_POSTS = table_of(Post)
_EVENTS = table_of(PostEvent)


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
        # Core statements: this runs for every post at its publish time, where the ORM's bookkeeping showed up.
        with self._engine.begin() as connection:
            moved = connection.execute(
                update(_POSTS)
                .where(_POSTS.c.id == event.post_id, _POSTS.c.status == PostStatus.SCHEDULED)
                .values(status=PostStatus.PUBLISHING, updated_at=_now())
            )
            if moved.rowcount == 0:
                if (
                    connection.execute(select(_POSTS.c.id).where(_POSTS.c.id == event.post_id)).first()
                    is None
                ):
                    raise post_not_found(event.post_id)
                return  # a retry of an attempt that committed
            # The status and its event commit together, so a moved status means the event is not there yet.
            connection.execute(insert(_EVENTS).values(**_event_row(event)))

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
        dedupe_key = f"finish:{activity.info().workflow_run_id}:{request.status.value}"
        recorded = exists().where(_EVENTS.c.dedupe_key == dedupe_key)
        with self._engine.begin() as connection:
            row = connection.execute(
                select(_POSTS.c.status, recorded).where(_POSTS.c.id == request.post_id)
            ).first()
            if row is None:
                raise post_not_found(request.post_id)
            previous, already_recorded = PostStatus(row[0]), bool(row[1])
            if previous is request.status:
                return  # a retry of an attempt that committed
            now = _now()
            values: dict[str, object] = {"status": request.status, "updated_at": now}
            if request.status is PostStatus.PUBLISHED:
                values.update(published_at=now, error_code=None, error_message=None)
                if request.media_id:
                    values["ig_media_id"] = request.media_id
                if request.permalink:
                    values["permalink"] = request.permalink
            else:
                values.update(error_code=request.error_code, error_message=request.error_message)
            connection.execute(update(_POSTS).where(_POSTS.c.id == request.post_id).values(**values))
            if not already_recorded:
                event = EventRecord(
                    post_id=request.post_id,
                    kind=EventKind.TRANSITION,
                    message=request.error_message or request.status.value,
                    # Per run: a retried post may fail again, and that second failure is an event of its own.
                    dedupe_key=dedupe_key,
                    status_from=previous,
                    status_to=request.status,
                    error_code=request.error_code,
                )
                connection.execute(insert(_EVENTS).values(**_event_row(event)))


def _now() -> datetime:
    return datetime.now(UTC)


def _event_row(event: EventRecord) -> dict[str, Any]:
    return {
        "post_id": event.post_id,
        "occurred_at": _now(),
        "kind": event.kind,
        "from_status": event.status_from if event.kind is EventKind.TRANSITION else None,
        "to_status": event.status_to,
        "error_code": event.error_code,
        "error_message": event.message if event.kind is EventKind.ERROR else None,
        "detail": {"message": event.message},
        "dedupe_key": event.dedupe_key,
    }


def _add_event(session: Session, event: EventRecord) -> None:
    exists = session.exec(select(PostEvent.id).where(PostEvent.dedupe_key == event.dedupe_key)).first()
    if exists is not None:
        return
    session.add(PostEvent(**_event_row(event)))


def _commit_once(session: Session) -> None:
    try:
        session.commit()
    except IntegrityError:
        # Two attempts raced past the existence check; the unique dedupe_key let exactly one in.
        session.rollback()
