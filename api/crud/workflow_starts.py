"""The record of posts' workflow starts: what starting a post's workflow needs, each start recorded as a
"workflow started" event, and the scheduled posts that have no start recorded since they last became scheduled
(their latest "intent": the "created" or "retry" transition, chronogram.lifecycle), which the reconciler starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ScalarSelect, exists, func
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from chronogram import lifecycle
from chronogram.enums import EventKind, PostStatus, PostType
from chronogram.lifecycle import DedupeKey
from chronogram.models import InstagramAccount, Post, PostEvent


@dataclass(frozen=True)
class WorkflowStart:
    """What starting a post's workflow, and recording that start, needs."""

    post_id: int
    account_id: int
    username: str
    post_type: PostType
    publish_at: datetime
    # The post's latest intent when this was read; None: not known, the start is recorded whatever came since.
    intent_id: int | None = None
    owner_id: int | None = None  # the UserId search attribute


@dataclass(frozen=True)
class StartedRun:
    """A workflow run that was started (or found running) for a post, to be recorded."""

    post_id: int
    run_id: str
    # The intent this start answers (WorkflowStart.intent_id): once a newer one exists, the record would claim
    # that the newer intent has a workflow, so it is dropped.
    intent_id: int | None
    started_at: datetime


def workflow_start(session: Session, *, post_id: int) -> WorkflowStart | None:
    row = session.exec(
        select(Post, InstagramAccount.username, latest_intent())
        .join(InstagramAccount, InstagramAccount.id == Post.account_id)  # type: ignore[arg-type]
        .where(Post.id == post_id)
        # The row as it is now: the session may hold the post as it was loaded before a change written by the
        # lifecycle on its connection (a retry's new publish time), and would answer with those stale values.
        .execution_options(populate_existing=True)
    ).first()
    if row is None:
        return None
    post, username, intent_id = row
    return start_of(post, username, intent_id)


def start_of(post: Post, username: str, intent_id: int | None) -> WorkflowStart:
    assert post.id is not None
    return WorkflowStart(
        post_id=post.id,
        account_id=post.account_id,
        username=username,
        post_type=post.type,
        publish_at=post.publish_at,
        intent_id=intent_id,
        owner_id=post.owner_id,
    )


def record_workflow_starts(session: Session, started: Sequence[StartedRun]) -> None:
    """Record workflow starts, in one transaction. Idempotent: the same run (a repeated start finds the running
    one) is recorded once. A start is not recorded once its post has a newer intent than the one it answers (a
    retry scheduled the post again while the record waited in a batch): it would vouch for the retry's run,
    which the retry records itself, or else the reconciler starts."""
    wanted = {DedupeKey.workflow_started(run.post_id, run.run_id): run for run in started}
    if not wanted:
        return
    recorded = set(
        session.exec(select(PostEvent.dedupe_key).where(col(PostEvent.dedupe_key).in_(wanted))).all()
    )
    post_ids = {run.post_id for run in wanted.values() if run.intent_id is not None}
    latest: dict[int, int | None] = {}
    if post_ids:
        latest = dict(
            session.exec(
                select(PostEvent.post_id, func.max(PostEvent.id))
                .where(col(PostEvent.post_id).in_(post_ids), PostEvent.to_status == PostStatus.SCHEDULED)
                .group_by(col(PostEvent.post_id))
            ).all()
        )
    rows = [
        lifecycle.event_row(
            post_id=run.post_id,
            kind=EventKind.TRANSITION,
            message="workflow started",
            detail={"run_id": run.run_id},
            dedupe_key=dedupe_key,
            occurred_at=run.started_at,
        )
        for dedupe_key, run in wanted.items()
        if dedupe_key not in recorded
        and (run.intent_id is None or (latest.get(run.post_id) or 0) <= run.intent_id)
    ]
    if not rows:
        return
    try:
        # A bulk insert: one statement for the batch, where adding PostEvent objects makes one per row.
        lifecycle.record_events(session.connection(), rows)
        session.commit()
    except IntegrityError:
        session.rollback()  # some were recorded by a concurrent start of the same run: the others one by one
        if len(wanted) > 1:
            for run in wanted.values():
                record_workflow_starts(session, [run])


def posts_awaiting_workflow(session: Session, *, updated_before: datetime, limit: int) -> list[WorkflowStart]:
    """Scheduled posts with no workflow start recorded since they last became scheduled."""
    started = aliased(PostEvent)
    intent = latest_intent()
    start_recorded = exists().where(
        col(started.post_id) == col(Post.id),
        col(started.dedupe_key).startswith(DedupeKey.WORKFLOW_STARTED_PREFIX),
        # A post recorded by other means has no "-> scheduled" event: any recorded start then counts.
        col(started.id) > func.coalesce(intent, 0),
    )
    rows = session.exec(
        select(Post, InstagramAccount.username, intent)
        .join(InstagramAccount, InstagramAccount.id == Post.account_id)  # type: ignore[arg-type]
        .where(Post.status == PostStatus.SCHEDULED, col(Post.updated_at) < updated_before, ~start_recorded)
        .order_by(col(Post.id))
        .limit(limit)
    ).all()
    return [start_of(post, username, intent_id) for post, username, intent_id in rows]


def latest_intent() -> ScalarSelect[int | None]:
    """The id of the posts row's newest "-> scheduled" event (None if it has none), for a query over posts."""
    intent = aliased(PostEvent)
    return (
        select(func.max(intent.id))
        .where(intent.post_id == Post.id, intent.to_status == PostStatus.SCHEDULED)
        # Correlated with the outer posts row: left to auto-correlation inside exists(), SQLAlchemy adds `posts`
        # to this subquery's FROM, which then takes the newest intent of any post.
        .correlate(Post)
        .scalar_subquery()
    )
