"""Posts: creation (with idempotency keys), listing, edits and retries. The record of their workflow starts, which
lets a crash between the database write and the workflow start be found and repaired: api.crud.workflow_starts.

Every status change goes through chronogram.lifecycle. After creation the workflow owns the status (its
activities move it); the two transitions asked for here are the two that start a workflow run: creation
(-> scheduled) and retry (failed -> scheduled). Each one's event is the post's scheduling "intent", and each
successful workflow start is recorded as a "workflow started" event.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import BigInteger, Insert, Integer, bindparam, delete, tuple_, union_all, update
from sqlalchemy.engine import Connection, CursorResult, Row
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select
from sqlmodel.sql.expression import SelectOfScalar

from api.crud import queues
from api.crud.accounts import AccountDisconnecting, is_disconnecting
from api.crud.templates import TemplateGone, record_use
from api.crud.workflow_starts import WorkflowStart, latest_intent, start_of
from chronogram import lifecycle
from chronogram.enums import EventKind, PostStatus, PostType
from chronogram.models import (
    IdempotencyKey,
    InstagramAccount,
    MediaAsset,
    Post,
    PostEvent,
    PostMedia,
    ReelOptions,
    TextEnum,
    UserTag,
    UTCDateTime,
    table_of,
)


class IdempotencyKeyReused(Exception):
    """The key was used before with a different request."""


class IdempotencyKeyInProgress(Exception):
    """The key's first request has not finished."""


class ReferenceGone(Exception):
    """The account or a media was deleted while the post was being recorded."""


@dataclass(frozen=True)
class NewPost:
    owner_id: int
    account_id: int
    # The account's, as read when the request was checked: the workflow's summary shows it.
    account_username: str
    post_type: PostType
    media_ids: Sequence[int]
    publish_at: datetime
    caption: str | None = None
    first_comment: str | None = None
    location_id: str | None = None
    user_tags: list[UserTag] = field(default_factory=list)
    alt_text: str | None = None
    # Per carousel item, aligned with media_ids: {"alt_text": ..., "user_tags": [...]}.
    items: Sequence[dict[str, Any]] | None = None
    reel_options: ReelOptions | None = None
    max_lateness_seconds: int | None = None
    # A queued post's slot (its publish_at), held in queue_slots within the creation's transaction.
    queue_slot: datetime | None = None
    # The template the caption was rendered from: its use is counted with the post.
    template_id: int | None = None
    # Saved as a draft: no workflow until it is scheduled.
    draft: bool = False


@dataclass(frozen=True)
class Created:
    """The post a creation request answers with (on a replay, the first request's), its media in order, and
    what starting its workflow needs while it is scheduled. With a session that expires on commit, reading the
    rows reloads them."""

    post_id: int
    replayed: bool
    post: Post
    media: list[PostMedia]
    start: WorkflowStart | None


def _now() -> datetime:
    return datetime.now(UTC)


# --- creation -----------------------------------------------------------------------------------------------------


def create_post(
    session: Session, *, new: NewPost, idempotency_key: str | None = None, fingerprint: str | None = None
) -> Created:
    """Record a post, its media and its creation event in one transaction; with an idempotency key, a repeated
    request returns the post of the first one instead."""
    if idempotency_key is not None:
        if fingerprint is None:
            raise ValueError("an idempotency key needs the request's fingerprint")
        existing = find_replay(session, user_id=new.owner_id, key=idempotency_key, fingerprint=fingerprint)
        if existing is not None:
            return existing

    post = Post(
        owner_id=new.owner_id,
        account_id=new.account_id,
        type=new.post_type,
        caption=new.caption,
        first_comment=new.first_comment,
        location_id=new.location_id,
        user_tags=new.user_tags,
        alt_text=new.alt_text,
        reel_options=new.reel_options,
        max_lateness_seconds=new.max_lateness_seconds,
        # In UTC, as the column reads back: the creation's answer is built from this object, a replay's from the
        # stored row, and both must say the same.
        publish_at=new.publish_at.astimezone(UTC),
        status=PostStatus.DRAFT if new.draft else PostStatus.SCHEDULED,
        template_id=new.template_id,
    )
    # Core inserts of rows built as ORM objects: the answer is built from the objects, and the unit of work's
    # bookkeeping was 16 % of the API's samples at 16 clients (bench/README.md).
    values = _values(post, exclude=frozenset({"status"}))
    # Built before the first write: on SQLite the database is locked from the first INSERT to the commit
    # (api.sqlite_writes), so the Python work left between the writes is what every other writer waits for.
    media = []
    for position, media_id in enumerate(new.media_ids):
        item = new.items[position] if new.items is not None else {}
        media.append(
            PostMedia(
                position=position,
                media_id=media_id,
                alt_text=item.get("alt_text"),
                user_tags=item.get("user_tags") or [],
            )
        )
    media_values = [_values(row) for row in media]
    connection = session.connection()
    scheduled: lifecycle.Scheduled | None = None
    if new.draft:
        post.id = lifecycle.save_draft(connection, post=values)
    else:
        scheduled = lifecycle.schedule(connection, post=values)
        post.id = scheduled.post_id
    for row, row_values in zip(media, media_values, strict=True):
        row.post_id = row_values["post_id"] = post.id
    if new.queue_slot is not None:
        # Raises queues.SlotTaken, with the transaction rolled back, if another request took the slot meanwhile.
        queues.claim(session, account_id=new.account_id, slot_at=new.queue_slot, post_id=post.id)
    try:
        connection.execute(_INSERTS[PostMedia], media_values)
        if idempotency_key is not None and fingerprint is not None:
            _insert(
                session,
                IdempotencyKey(
                    user_id=new.owner_id,
                    key=idempotency_key,
                    request_fingerprint=fingerprint,
                    post_id=post.id,
                ),
            )
        if new.template_id is not None:
            record_use(session, owner_id=new.owner_id, template_id=new.template_id, at=post.created_at)
        # Checked after the insert, within its transaction: a disconnection that began before this post holds
        # the account (see accounts.begin_disconnect) is seen here, one that begins after it sees this post.
        if is_disconnecting(session, account_id=new.account_id):
            session.rollback()
            raise AccountDisconnecting(new.account_id)
        session.commit()
    except (IntegrityError, TemplateGone):
        # Either the same idempotency key arrived twice at once and the other request won, or the account, a
        # media or the template was deleted since it was checked (the foreign keys are checked at commit).
        session.rollback()
        if idempotency_key is not None and fingerprint is not None:
            existing = find_replay(
                session, user_id=new.owner_id, key=idempotency_key, fingerprint=fingerprint
            )
            if existing is not None:
                return existing
        raise ReferenceGone() from None
    start = start_of(post, new.account_username, scheduled.intent_id) if scheduled is not None else None
    return Created(post_id=post.id, replayed=False, post=post, media=media, start=start)


def find_replay(session: Session, *, user_id: int, key: str, fingerprint: str) -> Created | None:
    """The post a first request with this key created, as stored now; None if the key is new."""
    row = session.get(IdempotencyKey, (user_id, key))
    if row is None:
        return None
    if row.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused(key)
    if row.post_id is None:
        raise IdempotencyKeyInProgress(key)
    post, username, intent_id = session.exec(
        select(Post, InstagramAccount.username, latest_intent())
        .join(InstagramAccount, InstagramAccount.id == Post.account_id)  # type: ignore[arg-type]
        .where(Post.id == row.post_id)
        .execution_options(populate_existing=True)
    ).one()
    start = start_of(post, username, intent_id) if post.status is PostStatus.SCHEDULED else None
    media = media_of(session, post_ids=[row.post_id])[row.post_id]
    return Created(post_id=row.post_id, replayed=True, post=post, media=media, start=start)


# --- reads --------------------------------------------------------------------------------------------------------


def owned_media(session: Session, *, owner_id: int, media_ids: Sequence[int]) -> dict[int, MediaAsset]:
    rows = session.exec(
        _OWNED_MEDIA, params={"media_ids": sorted(set(media_ids)), "owner_id": owner_id}
    ).all()
    return {row.id: row for row in rows if row.id is not None}


# Built once, as every post creation runs it.
_OWNED_MEDIA = select(MediaAsset).where(
    col(MediaAsset.id).in_(bindparam("media_ids", expanding=True)),
    col(MediaAsset.owner_id) == bindparam("owner_id"),
)


def media_of(session: Session, *, post_ids: Sequence[int]) -> dict[int, list[PostMedia]]:
    found: dict[int, list[PostMedia]] = {post_id: [] for post_id in post_ids}
    if not post_ids:
        return found
    for row in session.exec(_MEDIA_OF, params={"post_ids": list(post_ids)}).all():
        found[row.post_id].append(row)
    return found


# Built once: a list page runs it, and building it per call cost as much as running it.
_MEDIA_OF = (
    select(PostMedia)
    .where(col(PostMedia.post_id).in_(bindparam("post_ids", expanding=True)))
    .order_by(col(PostMedia.post_id), col(PostMedia.position))
)


def events_of(session: Session, *, post_id: int) -> list[PostEvent]:
    return list(
        session.exec(
            select(PostEvent)
            .where(PostEvent.post_id == post_id)
            .order_by(col(PostEvent.occurred_at), col(PostEvent.id))
        ).all()
    )


def list_posts(
    session: Session,
    *,
    owner_id: int,
    limit: int,
    status: PostStatus | None = None,
    account_id: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    after: tuple[datetime, int] | None = None,
) -> list[Post]:
    """One page ordered by (publish_at, id), after the ``after`` key: keyset pagination, so page 500 costs what
    page 1 costs. Each shape of filter runs on an index that yields rows already in that order."""
    statement, params = _page(owner_id, limit, status, account_id, start, end, after)
    rows = session.exec(statement, params=params).all()
    return sorted(rows, key=lambda post: (post.publish_at, post.id or 0))


def list_post_rows(
    session: Session,
    *,
    owner_id: int,
    limit: int,
    status: PostStatus | None = None,
    account_id: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    after: tuple[datetime, int] | None = None,
) -> list[Row[Any]]:
    """``list_posts`` as plain result rows of the posts' columns, for an answer that only reads them: loading a
    page of ORM objects cost more than the query."""
    statement, params = _page(owner_id, limit, status, account_id, start, end, after)
    rows = session.connection().execute(statement, params).all()
    return sorted(rows, key=lambda post: (post.publish_at, post.id))


def media_rows_of(session: Session, *, post_ids: Sequence[int]) -> dict[int, list[Row[Any]]]:
    """``media_of`` as plain result rows, for an answer that only reads them."""
    found: dict[int, list[Row[Any]]] = {post_id: [] for post_id in post_ids}
    if post_ids:
        for row in session.connection().execute(_MEDIA_OF, {"post_ids": list(post_ids)}):
            found[row.post_id].append(row)
    return found


def _page(
    owner_id: int,
    limit: int,
    status: PostStatus | None,
    account_id: int | None,
    start: datetime | None,
    end: datetime | None,
    after: tuple[datetime, int] | None,
) -> tuple[SelectOfScalar[Post], dict[str, Any]]:
    params: dict[str, Any] = {"owner_id": owner_id, "limit": limit}
    if status is not None:
        params["status"] = status
    if account_id is not None:
        params["account_id"] = account_id
    if start is not None:
        params["start"] = start
    if end is not None:
        params["end"] = end
    if after is not None:
        params["after_at"], params["after_id"] = after
    statement = _page_statement(
        by_status=status is not None,
        by_account=account_id is not None,
        by_start=start is not None,
        by_end=end is not None,
        by_after=after is not None,
    )
    return statement, params


@functools.cache
def _page_statement(
    *, by_status: bool, by_account: bool, by_start: bool, by_end: bool, by_after: bool
) -> SelectOfScalar[Post]:
    """The page query of one shape of filter, built once with its values as parameters: building it per request
    (the union below has five subqueries) cost a hundred times what SQLite spends running it."""

    def ordered(query: Any, status: Any) -> Any:
        query = query.where(col(Post.owner_id) == bindparam("owner_id"))
        if status is not None:
            query = query.where(col(Post.status) == status)
        if by_account:
            query = query.where(col(Post.account_id) == bindparam("account_id"))
        if by_start:
            query = query.where(col(Post.publish_at) >= bindparam("start", type_=UTCDateTime()))
        if by_end:
            query = query.where(col(Post.publish_at) < bindparam("end", type_=UTCDateTime()))
        if by_after:
            query = query.where(
                tuple_(col(Post.publish_at), col(Post.id))
                > tuple_(
                    bindparam("after_at", type_=UTCDateTime()), bindparam("after_id", type_=BigInteger())
                )
            )
        return query.order_by(col(Post.publish_at), col(Post.id)).limit(bindparam("limit", type_=Integer()))

    if by_status or by_account:
        # ix_posts_owner_id_status_publish_at_id, or ix_posts_account_id_publish_at_id.
        status = bindparam("status", type_=TextEnum(PostStatus)) if by_status else None
        single: SelectOfScalar[Post] = ordered(select(Post), status)
        return single
    # No index has (owner_id, publish_at, id); ix_posts_owner_id_status_publish_at_id does per status, so read
    # one ordered run per status and merge them: five index range scans of `limit` rows, never a sort of all.
    runs = [ordered(select(col(Post.id), col(Post.publish_at)), member).subquery() for member in PostStatus]
    merged = union_all(*(select(run.c.id, run.c.publish_at) for run in runs)).subquery()
    ids = (
        select(merged.c.id)
        .order_by(merged.c.publish_at, merged.c.id)
        .limit(bindparam("limit", type_=Integer()))
    )
    return select(Post).where(col(Post.id).in_(ids))


def posts_of_account(session: Session, *, account_id: int, statuses: Sequence[PostStatus]) -> list[Post]:
    return list(
        session.exec(
            select(Post).where(Post.account_id == account_id, col(Post.status).in_(list(statuses)))
        ).all()
    )


# --- changes while scheduled --------------------------------------------------------------------------------------


def update_content(
    session: Session,
    *,
    post_id: int,
    values: dict[str, Any],
    items: Sequence[dict[str, Any]] | None,
    status: PostStatus = PostStatus.SCHEDULED,
) -> bool:
    """Apply a content edit if the post is still ``status`` (scheduled, or a draft) and has no Instagram
    container (whose content was fixed when it was created); False (and nothing written) otherwise. Both are
    conditions of the one UPDATE, so a container recorded meanwhile is never contradicted."""
    changed = sorted([*values, *(["items"] if items is not None else [])])
    item_containers = select(PostMedia.post_id).where(
        col(PostMedia.post_id) == post_id, col(PostMedia.ig_container_id).is_not(None)
    )
    result = session.execute(
        update(Post)
        .where(
            col(Post.id) == post_id,
            col(Post.status) == status,
            col(Post.ig_container_id).is_(None),
            ~item_containers.exists(),
        )
        .values(**values, updated_at=_now())
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        return False
    if items is not None:
        for position, item in enumerate(items):
            session.execute(
                update(PostMedia)
                .where(col(PostMedia.post_id) == post_id, col(PostMedia.position) == position)
                .values(alt_text=item.get("alt_text"), user_tags=item.get("user_tags") or [])
            )
    edited = f"edited {', '.join(changed)}"
    lifecycle.record_event(session.connection(), post_id, None, kind=EventKind.TRANSITION, message=edited)
    session.commit()
    return True


# --- drafts ----------------------------------------------------------------------------------------------------------


def schedule_draft(session: Session, *, post_id: int, publish_at: datetime) -> WorkflowStart | None:
    """draft -> scheduled at ``publish_at``, committed; what starting its workflow needs. None if an earlier
    request scheduled it; IllegalTransition if it is not a draft; AccountDisconnecting as in create_post."""
    try:
        scheduled = lifecycle.schedule_draft(session.connection(), post_id=post_id, publish_at=publish_at)
        if scheduled is None:
            session.rollback()
            return None
        post, username = session.exec(
            select(Post, InstagramAccount.username)
            .join(InstagramAccount, InstagramAccount.id == Post.account_id)  # type: ignore[arg-type]
            .where(Post.id == post_id)
            .execution_options(populate_existing=True)
        ).one()
        if is_disconnecting(session, account_id=post.account_id):
            raise AccountDisconnecting(post.account_id)
    except BaseException:
        session.rollback()
        raise
    session.commit()
    return start_of(post, username, scheduled.intent_id)


def was_scheduled_from_draft(session: Session, *, post_id: int) -> bool:
    key = lifecycle.DedupeKey.draft_scheduled(post_id)
    return session.exec(select(PostEvent.id).where(PostEvent.dedupe_key == key)).first() is not None


def set_draft_time(session: Session, *, post_id: int, publish_at: datetime) -> bool:
    """A draft's planned time (no workflow to tell); False if it is no longer a draft."""
    moved = session.execute(
        update(Post)
        .where(col(Post.id) == post_id, col(Post.status) == PostStatus.DRAFT)
        .values(publish_at=publish_at, updated_at=_now())
    )
    session.commit()
    return bool(moved.rowcount == 1)  # type: ignore[attr-defined]


def delete_draft(session: Session, *, post_id: int) -> bool:
    """Delete a draft (it never had a workflow) with its media rows and events; False if it is not a draft."""
    deleted = session.execute(
        delete(Post).where(col(Post.id) == post_id, col(Post.status) == PostStatus.DRAFT)
    )
    session.commit()
    return bool(deleted.rowcount == 1)  # type: ignore[attr-defined]


def has_containers(session: Session, *, post_id: int) -> bool:
    """Whether Instagram containers exist for the post: their content was fixed when they were created."""
    post_level = session.exec(select(Post.ig_container_id).where(Post.id == post_id)).first()
    if post_level:
        return True
    item_level = session.exec(
        select(PostMedia.ig_container_id).where(
            PostMedia.post_id == post_id, col(PostMedia.ig_container_id).is_not(None)
        )
    ).first()
    return item_level is not None


def begin_retry(session: Session, *, post_id: int, publish_at: datetime) -> bool:
    """failed -> scheduled for a fresh workflow run; False if the post is not failed (e.g. a concurrent retry).
    AccountDisconnecting if its account is being disconnected."""
    try:
        lifecycle.retry(session.connection(), post_id=post_id, publish_at=publish_at)
    except (lifecycle.IllegalTransition, lifecycle.PostMissing):
        session.rollback()
        return False
    account_id = session.exec(select(Post.account_id).where(Post.id == post_id)).one()
    if is_disconnecting(session, account_id=account_id):  # as in create_post
        session.rollback()
        raise AccountDisconnecting(account_id)
    session.commit()
    return True


# Built once: a statement built per call costs more than the unit of work it replaces.
_INSERTS: dict[type[SQLModel], Insert] = {
    model: table_of(model).insert() for model in (PostMedia, IdempotencyKey)
}


def _values(row: SQLModel, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A table row's column values as the ORM would insert them; an identity left unset is the database's."""
    values = {column.key: getattr(row, column.key) for column in table_of(type(row)).columns}
    return {
        key: value
        for key, value in values.items()
        if key not in exclude and not (key == "id" and value is None)
    }


def _insert(session: Session, row: SQLModel) -> Any:
    """Insert without the unit of work; the new primary key (its first column)."""
    result = cast(CursorResult[Any], session.connection().execute(_INSERTS[type(row)], _values(row)))
    key = result.inserted_primary_key
    assert key is not None
    return key[0]


# --- runs that ended without finishing their post (the reconciler) ------------------------------------------------

_OPEN_STATUSES = (PostStatus.SCHEDULED, PostStatus.PUBLISHING)


def open_posts(session: Session, *, post_ids: Sequence[int]) -> dict[int, PostStatus]:
    """Which of ``post_ids`` are still scheduled or publishing, with their status."""
    found: dict[int, PostStatus] = {}
    for start in range(0, len(post_ids), 500):
        rows = session.exec(
            select(Post.id, Post.status).where(
                col(Post.id).in_(post_ids[start : start + 500]), col(Post.status).in_(_OPEN_STATUSES)
            )
        ).all()
        found.update({post_id: PostStatus(status) for post_id, status in rows if post_id is not None})
    session.commit()
    return found


def cancel_after_run(session: Session, *, post_id: int, run_id: str, reason: str) -> bool:
    """scheduled -> cancelled, for a run that ended on a cancellation requested through Temporal."""
    return _transition(
        session,
        lambda connection: lifecycle.cancel(
            connection, post_id, lifecycle.DedupeKey.cancel_requested(run_id), reason=reason
        ),
    )


def restart_after_run(session: Session, *, post_id: int, run_id: str, reason: str) -> bool:
    """A fresh run for a post whose run ``run_id`` ended without finishing it."""
    return _transition(
        session,
        lambda connection: lifecycle.restart(
            connection, post_id, lifecycle.DedupeKey.restart(run_id), reason=reason
        ),
    )


def _transition(session: Session, apply: Callable[[Connection], bool]) -> bool:
    try:
        applied = apply(session.connection())
    except (lifecycle.IllegalTransition, lifecycle.PostMissing):
        session.rollback()
        return False
    session.commit()
    return applied
