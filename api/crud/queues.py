"""Posting schedules and queue slots in the database.

A queued post holds its slot in queue_slots, whose primary key (account, instant) is what keeps two requests
racing for the same slot from both getting it, on SQLite and PostgreSQL alike: the loser's insert fails and it
takes the next free slot (api.use_cases.queues). A slot is taken while a scheduled post of the account is at that
instant, or while the post holding it is still scheduled; a claim whose post was published, failed or was
cancelled is stale, and is removed by the next request that wants its slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time

from sqlalchemy import delete, insert, union
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from chronogram.enums import PostStatus
from chronogram.models import Post, QueueSlot, table_of
from chronogram.models import PostingSchedule as ScheduleRow
from chronogram.posting_schedule import PostingSchedule, Weekday, WeeklySlot, parse_slot_time


class SlotTaken(Exception):
    """Another post took the slot between the read that found it free and this insert."""

    def __init__(self, slot_at: datetime) -> None:
        super().__init__(f"slot {slot_at.isoformat()} was taken meanwhile")
        self.slot_at = slot_at


def schedule_of(session: Session, *, account_id: int) -> tuple[PostingSchedule, ScheduleRow] | None:
    row = session.get(ScheduleRow, account_id)
    if row is None:
        return None
    return as_schedule(row), row


def as_schedule(row: ScheduleRow) -> PostingSchedule:
    slots = tuple(WeeklySlot(Weekday(item["weekday"]), parse_slot_time(item["time"])) for item in row.slots)
    return PostingSchedule(time_zone=row.time_zone, slots=slots)


def put_schedule(
    session: Session, *, owner_id: int, account_id: int, schedule: PostingSchedule
) -> ScheduleRow:
    """Create or replace the account's schedule. Scheduled posts stay where they are (reflow moves them)."""
    values = [{"weekday": int(slot.weekday), "time": _hhmm(slot.at)} for slot in schedule.slots]
    row = session.get(ScheduleRow, account_id)
    if row is None:
        row = ScheduleRow(
            account_id=account_id, owner_id=owner_id, time_zone=schedule.time_zone, slots=values
        )
    else:
        row.time_zone = schedule.time_zone
        row.slots = values
        row.updated_at = datetime.now(UTC)
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def delete_schedule(session: Session, *, account_id: int) -> bool:
    deleted = session.connection().execute(
        delete(table_of(ScheduleRow)).where(table_of(ScheduleRow).c.account_id == account_id)
    )
    session.commit()
    return bool(deleted.rowcount)


def taken_instants(session: Session, *, account_id: int, start: datetime, end: datetime) -> set[datetime]:
    """Instants in [start, end] a scheduled post of the account is at, or a still-scheduled post holds."""
    at_instant = select(Post.publish_at).where(
        Post.account_id == account_id,
        Post.status == PostStatus.SCHEDULED,
        col(Post.publish_at) >= start,
        col(Post.publish_at) <= end,
    )
    claimed = (
        select(QueueSlot.slot_at)
        .join(Post, col(Post.id) == col(QueueSlot.post_id))
        .where(
            QueueSlot.account_id == account_id,
            Post.status == PostStatus.SCHEDULED,
            col(QueueSlot.slot_at) >= start,
            col(QueueSlot.slot_at) <= end,
        )
    )
    rows = session.connection().execute(union(at_instant, claimed)).scalars()
    return {_utc(value) for value in rows}


def claim(session: Session, *, account_id: int, slot_at: datetime, post_id: int) -> None:
    """Record that ``post_id`` holds the slot, in the caller's transaction; raises SlotTaken (after rolling the
    transaction back) if a post that is still scheduled holds it."""
    slots = table_of(QueueSlot)
    connection = session.connection()
    stale = select(Post.id).where(Post.status != PostStatus.SCHEDULED)
    connection.execute(
        delete(slots).where(
            slots.c.account_id == account_id, slots.c.slot_at == slot_at, slots.c.post_id.in_(stale)
        )
    )
    try:
        connection.execute(insert(slots).values(account_id=account_id, slot_at=slot_at, post_id=post_id))
    except IntegrityError:
        session.rollback()
        raise SlotTaken(slot_at) from None


@dataclass(frozen=True)
class SlotPost:
    slot_at: datetime
    post: Post


def posts_in(session: Session, *, account_id: int, start: datetime, end: datetime) -> list[SlotPost]:
    """The scheduled posts the queue shows in [start, end]: each at its slot if it holds one, else at its time."""
    claimed = session.exec(
        select(QueueSlot.slot_at, Post)
        .join(Post, col(Post.id) == col(QueueSlot.post_id))
        .where(
            QueueSlot.account_id == account_id,
            Post.status == PostStatus.SCHEDULED,
            col(QueueSlot.slot_at) >= start,
            col(QueueSlot.slot_at) <= end,
        )
    ).all()
    found = [SlotPost(_utc(slot_at), post) for slot_at, post in claimed]
    holding = {item.post.id for item in found}
    others = session.exec(
        select(Post).where(
            Post.account_id == account_id,
            Post.status == PostStatus.SCHEDULED,
            col(Post.publish_at) >= start,
            col(Post.publish_at) <= end,
        )
    ).all()
    found += [SlotPost(post.publish_at, post) for post in others if post.id not in holding]
    return sorted(found, key=lambda item: (item.slot_at, item.post.id or 0))


def queued_posts(session: Session, *, account_id: int, after: datetime) -> list[SlotPost]:
    """The scheduled posts holding a slot after ``after``: what a reflow moves, in slot order."""
    rows = session.exec(
        select(QueueSlot.slot_at, Post)
        .join(Post, col(Post.id) == col(QueueSlot.post_id))
        .where(
            QueueSlot.account_id == account_id,
            Post.status == PostStatus.SCHEDULED,
            col(QueueSlot.slot_at) > after,
        )
        .order_by(col(QueueSlot.slot_at), col(Post.id))
    ).all()
    return [SlotPost(_utc(slot_at), post) for slot_at, post in rows]


def move_claims(session: Session, *, account_id: int, moves: Sequence[tuple[int, datetime]]) -> None:
    """Give each post (id, new slot) its new slot, in one transaction: their old claims go first, so that posts
    can swap slots."""
    if not moves:
        return
    slots = table_of(QueueSlot)
    connection = session.connection()
    connection.execute(delete(slots).where(slots.c.post_id.in_([post_id for post_id, _ in moves])))
    for post_id, slot_at in moves:
        claim(session, account_id=account_id, slot_at=slot_at, post_id=post_id)
    session.commit()


def _hhmm(at: time) -> str:
    return at.strftime("%H:%M")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
