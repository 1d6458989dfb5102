"""Recurring series and their occurrences in the database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete
from sqlmodel import Session, col, select

from chronogram.enums import PostStatus, SeriesStatus
from chronogram.models import Post, Series, SeriesOccurrence, table_of


def owned_series(session: Session, *, owner_id: int, series_id: int) -> Series | None:
    return session.exec(select(Series).where(Series.id == series_id, Series.owner_id == owner_id)).first()


def list_series(session: Session, *, owner_id: int) -> list[Series]:
    return list(
        session.exec(select(Series).where(Series.owner_id == owner_id).order_by(col(Series.id))).all()
    )


def add_series(session: Session, row: Series) -> Series:
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def delete_series(session: Session, *, series_id: int) -> None:
    session.connection().execute(delete(table_of(Series)).where(table_of(Series).c.id == series_id))
    session.commit()


def save(session: Session, row: Series) -> Series:
    row.updated_at = datetime.now(UTC)
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def cancel(session: Session, row: Series) -> Series:
    """Cancelled: its workflow creates nothing more (the activity reads the status inside each occurrence's
    transaction, FOR UPDATE on PostgreSQL, so an occurrence being created now is either rolled back or seen by
    the caller's next read)."""
    row.status = SeriesStatus.CANCELLED
    return save(session, row)


@dataclass(frozen=True)
class OccurrenceRow:
    key: str
    problem: str | None
    post: Post | None


def occurrences_of(session: Session, *, series_id: int, limit: int = 50) -> list[OccurrenceRow]:
    rows = session.exec(
        select(SeriesOccurrence, Post)
        .join(Post, col(Post.id) == col(SeriesOccurrence.post_id), isouter=True)
        .where(SeriesOccurrence.series_id == series_id)
        .order_by(col(SeriesOccurrence.occurrence_key).desc())
        .limit(limit)
    ).all()
    return [OccurrenceRow(row.occurrence_key, row.problem, post) for row, post in reversed(rows)]


def scheduled_occurrences(session: Session, *, series_id: int, after: datetime) -> list[tuple[str, Post]]:
    """The series' occurrences whose posts are scheduled after ``after``, in time order."""
    rows = session.exec(
        select(SeriesOccurrence.occurrence_key, Post)
        .join(Post, col(Post.id) == col(SeriesOccurrence.post_id))
        .where(
            SeriesOccurrence.series_id == series_id,
            Post.status == PostStatus.SCHEDULED,
            col(Post.publish_at) > after,
        )
        .order_by(col(Post.publish_at))
    ).all()
    return [(key, post) for key, post in rows]


def release(session: Session, *, series_id: int, keys: Sequence[str]) -> None:
    """Forget these occurrences, so that the series' workflow creates them again (from the series as it is now)."""
    if keys:
        table = table_of(SeriesOccurrence)
        session.connection().execute(
            delete(table).where(table.c.series_id == series_id, table.c.occurrence_key.in_(list(keys)))
        )
    session.commit()
