"""Reading posts: a page of the list, and one post with its workflow's live state and its history."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Row
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api import temporal_gateway
from api.crud import posts as crud
from api.deps import AppServices
from api.pagination import decode_post_cursor, encode_post_cursor
from api.schemas.post_responses import PostDetail, PostOut, PostPage
from chronogram.contracts import PostState
from chronogram.enums import PostStatus
from chronogram.models import Post, PostEvent, PostMedia

log = logging.getLogger("chronogram.api.posts")


async def page_of_posts(
    session: Session,
    *,
    owner_id: int,
    limit: int,
    status: PostStatus | None,
    account_id: int | None,
    start: datetime | None,
    end: datetime | None,
    cursor: str | None,
) -> PostPage:
    """The posts after ``cursor`` in the order of (publish_at, id), and the cursor of the next page if any."""
    after = decode_post_cursor(cursor) if cursor is not None else None

    def read() -> tuple[list[Row[Any]], dict[int, list[Row[Any]]], bool]:
        """A page of posts, their media, and whether more follow (read as one post more than the page)."""
        rows = crud.list_post_rows(
            session,
            owner_id=owner_id,
            limit=limit + 1,
            status=status,
            account_id=account_id,
            start=start,
            end=end,
            after=after,
        )
        page = rows[:limit]
        media = crud.media_rows_of(session, post_ids=[post.id for post in page])
        # End the read transaction here, in the thread: the session then closes without a trip of its own.
        session.commit()
        return page, media, len(rows) > limit

    page, media, more = await run_in_threadpool(read)
    return PostPage(
        data=[PostOut.from_row(post, media[post.id]) for post in page],
        next_cursor=encode_post_cursor(page[-1]) if more else None,
    )


async def post_detail(
    services: AppServices, session: Session, post: Post, *, state: PostState | None = None
) -> PostDetail:
    """The post as stored now, with ``state`` (else, while it is scheduled or publishing, its workflow's live
    state) and its history. A scheduled post found without a workflow gets one."""
    assert post.id is not None
    post_id = post.id
    if state is None and post.status in (PostStatus.SCHEDULED, PostStatus.PUBLISHING):
        try:
            state = await temporal_gateway.query_state(services, post_id)
        except temporal_gateway.WorkflowMissing:
            await _repair_lost_start(services, post)
    # This process may not have written the record of the post's start yet: its history must show it.
    await services.start_records.landed(post_id)
    # Read after asking the workflow, so that the row is never older than the live state shown with it.
    fresh, media, events = await run_in_threadpool(_stored, session, post_id)
    if fresh.status not in (PostStatus.SCHEDULED, PostStatus.PUBLISHING):
        state = None if state is None or state.status is not fresh.status else state
    return PostDetail.build(fresh, media, events, state)


async def live_state(services: AppServices, post_id: int) -> PostState | None:
    """What the post's workflow says now; None if it has none or did not answer in time."""
    try:
        return await temporal_gateway.query_state(services, post_id)
    except temporal_gateway.WorkflowMissing:
        return None


async def _repair_lost_start(services: AppServices, post: Post) -> None:
    """A read of a scheduled post that has no workflow: the reconciler's job, done now."""
    grace = timedelta(seconds=services.settings.api_reconcile_grace_seconds)
    if post.status is not PostStatus.SCHEDULED or post.updated_at > datetime.now(UTC) - grace:
        return  # a young post is still being started by the request that created it
    try:
        await temporal_gateway.ensure_started(services, post.id or 0)
    except Exception:
        log.warning("could not start the missing workflow of post %s", post.id, exc_info=True)


def reload(session: Session, post_id: int) -> Post:
    """The post's row as stored now."""
    post = session.get(Post, post_id, populate_existing=True)
    assert post is not None
    return post


def _stored(session: Session, post_id: int) -> tuple[Post, list[PostMedia], list[PostEvent]]:
    return (
        reload(session, post_id),
        crud.media_of(session, post_ids=[post_id])[post_id],
        crud.events_of(session, post_id=post_id),
    )
