"""The activity of a series' workflow: create the series' occurrences a bounded horizon ahead, as ordinary posts,
and start their workflows.

Each occurrence is recorded in its own transaction with its series_occurrences row, whose key (series id, local
time) makes the creation idempotent: a retried activity or a replayed workflow never creates an occurrence twice.
A post is checked with the same rules as an API post (chronogram.post_rules) and recorded through
chronogram.lifecycle (status and its one "created" event); an occurrence the rules refuse is recorded with its
problem instead, so it is not tried again. Within the transaction, after the insert, the series is read again (FOR
UPDATE on PostgreSQL): a cancellation that committed first rolls the occurrence back; one that commits after sees
the post, and cancels it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, insert
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from chronogram import lifecycle
from chronogram.contracts import TASK_QUEUE, OccurrencesInput, OccurrencesResult, SeriesInterface
from chronogram.enums import PostStatus, SeriesStatus
from chronogram.models import (
    InstagramAccount,
    MediaAsset,
    Post,
    PostMedia,
    Series,
    SeriesOccurrence,
    table_of,
)
from chronogram.post_rules import MediaFacts, PostContent, Violation, post_violations
from chronogram.recurrence import Occurrence, Recurrence, next_after, occurrences
from chronogram.scheduling import start_post_workflow

log = logging.getLogger(__name__)

_SERIES = table_of(Series)
_OCCURRENCES = table_of(SeriesOccurrence)
_POST_MEDIA = table_of(PostMedia)
# The soonest the workflow looks again, however close the next occurrence's turn.
_MIN_PAUSE = timedelta(minutes=1)


@dataclass(frozen=True)
class _Start:
    post_id: int
    account_id: int
    username: str
    post: Post


@dataclass(frozen=True)
class _Round:
    ended: bool
    created: list[int]
    starts: list[_Start]
    next_check_at: datetime | None


class SeriesActivities(SeriesInterface):
    """Receives the database engine and the worker's Temporal client (it starts the occurrences' workflows)."""

    def __init__(self, engine: Engine, temporal: Client, *, task_queue: str = TASK_QUEUE) -> None:
        self._engine = engine
        self._temporal = temporal
        self._task_queue = task_queue

    @activity.defn
    async def create_occurrences(self, request: OccurrencesInput) -> OccurrencesResult:
        done = await asyncio.to_thread(self._create, request)
        # Every scheduled occurrence in the horizon, not only this round's: a retry after a crash between the
        # commit and the start starts what the first attempt did not (USE_EXISTING: a running one is found).
        for start in done.starts:
            try:
                await start_post_workflow(
                    self._temporal,
                    post_id=start.post_id,
                    account_id=start.account_id,
                    username=start.username,
                    post_type=start.post.type,
                    publish_at=start.post.publish_at,
                    user_id=start.post.owner_id,
                    task_queue=self._task_queue,
                )
            except WorkflowAlreadyStartedError:
                pass  # it ended meanwhile (cancelled): never started again
        return OccurrencesResult(
            ended=done.ended, created_post_ids=done.created, next_check_at=done.next_check_at
        )

    def _create(self, request: OccurrencesInput) -> _Round:
        until = request.now + timedelta(days=request.horizon_days)
        with Session(self._engine, expire_on_commit=False) as session:
            series = session.get(Series, request.series_id)
            if series is None or series.status is not SeriesStatus.ACTIVE:
                return _Round(ended=True, created=[], starts=[], next_check_at=None)
            recurrence = Recurrence(
                rule=series.rule,
                starts_at=datetime.fromisoformat(series.starts_at),
                time_zone=series.time_zone,
            )
            due = list(occurrences(recurrence, after=request.now, until=until))
            done = set(
                session.exec(
                    select(SeriesOccurrence.occurrence_key).where(
                        SeriesOccurrence.series_id == request.series_id,
                        col(SeriesOccurrence.occurrence_key).in_([o.key for o in due]),
                    )
                ).all()
            )
            account = session.get(InstagramAccount, series.account_id)
            assets = {
                asset.id: asset
                for asset in session.exec(
                    select(MediaAsset).where(
                        col(MediaAsset.id).in_(series.media_ids), MediaAsset.owner_id == series.owner_id
                    )
                ).all()
            }
            session.commit()
            if account is None or account.disconnecting_since is not None:
                # Being disconnected: it takes no new posts, and the series goes with it.
                return _Round(ended=True, created=[], starts=[], next_check_at=None)
            created: list[int] = []
            for occurrence in due:
                if occurrence.key in done:
                    continue
                with self._engine.connect() as connection:
                    post_id = _record(connection, series, occurrence, _problems(series, assets))
                if post_id is None and not _still_active(self._engine, series.id or 0):
                    return _Round(ended=True, created=created, starts=[], next_check_at=None)
                if post_id is not None:
                    created.append(post_id)
                    log.info("series %s: occurrence %s is post %s", series.id, occurrence.key, post_id)
            starts = [
                _Start(post.id or 0, series.account_id, account.username, post)
                for post in _scheduled_occurrences(session, request.series_id, request.now, until)
            ]
            upcoming = next_after(recurrence, until)
        if upcoming is None:
            return _Round(ended=True, created=created, starts=starts, next_check_at=None)
        check_at = max(upcoming.at - timedelta(days=request.horizon_days), request.now + _MIN_PAUSE)
        return _Round(ended=False, created=created, starts=starts, next_check_at=check_at)


def _problems(series: Series, assets: dict[int | None, MediaAsset]) -> list[Violation]:
    missing = [media_id for media_id in series.media_ids if media_id not in assets]
    if missing:
        return [Violation("media_ids", "unknown_media", f"media {missing[0]} was deleted")]
    facts = [
        MediaFacts(
            kind=asset.kind,
            size_bytes=asset.size_bytes,
            width=asset.width,
            height=asset.height,
            duration_ms=asset.duration_ms,
        )
        for asset in (assets[media_id] for media_id in series.media_ids)
    ]
    content = PostContent(post_type=series.type, caption=series.caption, first_comment=series.first_comment)
    return post_violations(content, facts)


def _record(
    connection: Connection, series: Series, occurrence: Occurrence, problems: list[Violation]
) -> int | None:
    """One occurrence, in one transaction: its post (or its problem) and its key. None if it was recorded already
    (a concurrent or earlier attempt), refused, or the series was cancelled meanwhile."""
    assert series.id is not None
    try:
        with connection.begin():
            post_id = None
            if not problems:
                post = Post(
                    owner_id=series.owner_id,
                    account_id=series.account_id,
                    type=series.type,
                    caption=series.caption,
                    first_comment=series.first_comment,
                    publish_at=occurrence.at,
                )
                values = {column.key: getattr(post, column.key) for column in table_of(Post).columns}
                scheduled = lifecycle.schedule(
                    connection,
                    post={key: value for key, value in values.items() if key not in ("id", "status")},
                    message=f"created by series {series.id} for {occurrence.key}",
                )
                post_id = scheduled.post_id
                connection.execute(
                    insert(_POST_MEDIA),
                    [
                        {"post_id": post_id, "position": position, "media_id": media_id, "user_tags": []}
                        for position, media_id in enumerate(series.media_ids)
                    ],
                )
            connection.execute(
                insert(_OCCURRENCES).values(
                    series_id=series.id,
                    occurrence_key=occurrence.key,
                    post_id=post_id,
                    problem=None
                    if post_id is not None
                    else "; ".join(f"{p.field}: {p.message}" for p in problems),
                )
            )
            status = connection.execute(
                core_select(_SERIES.c.status).where(_SERIES.c.id == series.id).with_for_update()
            ).scalar()
            if status != SeriesStatus.ACTIVE.value:
                raise _SeriesEnded()
    except IntegrityError:
        return None  # the key exists: recorded by another attempt
    except _SeriesEnded:
        return None
    return post_id


class _SeriesEnded(Exception):
    """Raised inside an occurrence's transaction to roll it back: the series was cancelled meanwhile."""


def _still_active(engine: Engine, series_id: int) -> bool:
    with engine.connect() as connection:
        status = connection.execute(core_select(_SERIES.c.status).where(_SERIES.c.id == series_id)).scalar()
    return status == SeriesStatus.ACTIVE.value


def _scheduled_occurrences(session: Session, series_id: int, after: datetime, until: datetime) -> list[Post]:
    return list(
        session.exec(
            select(Post)
            .join(SeriesOccurrence, col(SeriesOccurrence.post_id) == col(Post.id))
            .where(
                SeriesOccurrence.series_id == series_id,
                Post.status == PostStatus.SCHEDULED,
                col(Post.publish_at) > after,
                col(Post.publish_at) <= until,
            )
        ).all()
    )
