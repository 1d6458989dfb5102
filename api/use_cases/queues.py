"""Posting queues: an account's schedule of weekly slots, the next free slot for a post sent with ``queue: true``,
the coming slots with their posts, and the reflow that moves queued posts into the schedule's slots.

Changing a schedule moves no post: the posts already queued keep their times until a reflow asks for it, which
reschedules each one through its workflow (the same signal as PATCH /v1/posts/{id} with a new publish_at).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.crud import posts as crud
from api.crud import queues
from api.deps import AppServices
from api.errors import ApiError, not_found
from api.schemas.posts import PostCreate, PostUpdate
from api.schemas.queues import (
    Day,
    QueuedPost,
    QueueOut,
    QueueSlotOut,
    ReflowedPost,
    ReflowOut,
    ReflowRefusal,
    ScheduleOut,
    SlotOut,
)
from api.use_cases import post_changes
from api.use_cases.post_checks import checked_new_post
from chronogram.models import InstagramAccount, Post
from chronogram.models import PostingSchedule as ScheduleRow
from chronogram.posting_schedule import PostingSchedule, SlotTime, upcoming_slots
from chronogram.settings import Settings
from chronogram.wall_clock import zone_of

# A queued post that loses its slot to a concurrent request tries the next free one, this many times in all.
_CLAIM_ATTEMPTS = 8


def schedule_out(row: ScheduleRow) -> ScheduleOut:
    days = list(Day)
    return ScheduleOut(
        account_id=row.account_id,
        time_zone=row.time_zone,
        slots=[SlotOut(day=days[item["weekday"]], time=item["time"]) for item in row.slots],
        updated_at=row.updated_at,
    )


def horizon(settings: Settings, now: datetime) -> datetime:
    """How far ahead a slot may be: as far as a post may be scheduled."""
    return now + timedelta(days=settings.api_max_schedule_horizon_days)


def next_free_slot(
    session: Session, *, account_id: int, schedule: PostingSchedule, now: datetime, until: datetime
) -> SlotTime | None:
    """The first slot after ``now`` that no scheduled post of the account is at or holds; None within ``until``."""
    taken = queues.taken_instants(session, account_id=account_id, start=now, end=until)
    return next(
        (slot for slot in upcoming_slots(schedule, after=now, until=until) if slot.at not in taken), None
    )


def create_queued(
    session: Session,
    body: PostCreate,
    *,
    owner_id: int,
    settings: Settings,
    now: datetime,
    idempotency_key: str | None,
    fingerprint: str | None,
) -> crud.Created:
    """Record ``body`` at the next free slot of its account's schedule (the creation path of every post, with the
    slot as its publish_at). Blocking: called in the thread pool."""
    if body.publish_at is not None:
        raise ApiError(
            422, "queue_with_publish_at", "send either publish_at or queue: true, not both", field="queue"
        )
    found = queues.schedule_of(session, account_id=body.account_id)
    account = session.get(InstagramAccount, body.account_id)
    if account is None or account.owner_id != owner_id:
        # The rules report the unknown account (with every other problem of the request).
        checked_new_post(session, body, owner_id=owner_id, settings=settings, now=now)
    if found is None:
        raise ApiError(
            422,
            "no_posting_schedule",
            f"account {body.account_id} has no posting schedule; PUT /v1/accounts/{body.account_id}/schedule first",
            field="queue",
        )
    schedule, _ = found
    for _attempt in range(_CLAIM_ATTEMPTS):
        slot = next_free_slot(
            session, account_id=body.account_id, schedule=schedule, now=now, until=horizon(settings, now)
        )
        if slot is None:
            raise ApiError(
                422,
                "queue_full",
                f"every slot of account {body.account_id}'s schedule is taken within "
                f"{settings.api_max_schedule_horizon_days} days; add slots or give publish_at",
                field="queue",
            )
        at_slot = body.model_copy(update={"publish_at": slot.at, "queue": False})
        new = checked_new_post(session, at_slot, owner_id=owner_id, settings=settings, now=now)
        try:
            return crud.create_post(
                session,
                new=dataclasses.replace(new, queue_slot=slot.at),
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
            )
        except queues.SlotTaken:
            continue
    raise ApiError(409, "queue_busy", "other posts kept taking the free slots; try again")


async def queue_view(
    services: AppServices, session: Session, account: InstagramAccount, *, limit: int
) -> QueueOut:
    assert account.id is not None
    account_id = account.id

    def read() -> QueueOut:
        found = queues.schedule_of(session, account_id=account_id)
        if found is None:
            raise not_found("schedule", account_id)
        schedule, _ = found
        now = datetime.now(UTC)
        slots = []
        for slot in upcoming_slots(schedule, after=now, until=horizon(services.settings, now)):
            slots.append(slot)
            if len(slots) >= limit:
                break
        posts = queues.posts_in(session, account_id=account_id, start=now, end=slots[-1].at) if slots else []
        session.commit()
        zone = zone_of(schedule.time_zone)
        return QueueOut(
            account_id=account_id,
            time_zone=schedule.time_zone,
            slots=[
                QueueSlotOut(
                    at=slot.at,
                    local_time=slot.at.astimezone(zone).isoformat(),
                    posts=[_queued(item.post) for item in posts if item.slot_at == slot.at],
                )
                for slot in slots
            ],
        )

    return await run_in_threadpool(read)


def _queued(post: Post) -> QueuedPost:
    assert post.id is not None
    return QueuedPost(
        id=post.id, type=post.type, status=post.status, caption=post.caption, publish_at=post.publish_at
    )


@dataclasses.dataclass(frozen=True)
class _Plan:
    moves: list[tuple[Post, datetime, datetime]]  # post, its publish_at now, its new slot
    unchanged: list[int]
    without_slot: list[int]


async def reflow(services: AppServices, session: Session, account: InstagramAccount) -> ReflowOut:
    """Move the account's queued posts, in their order, into the first free slots of its schedule as it is now;
    each move is a reschedule through the post's workflow."""
    assert account.id is not None
    account_id = account.id
    now = datetime.now(UTC)

    def plan() -> _Plan:
        found = queues.schedule_of(session, account_id=account_id)
        if found is None:
            raise not_found("schedule", account_id)
        schedule, _ = found
        queued = queues.queued_posts(session, account_id=account_id, after=now)
        until = horizon(services.settings, now)
        holders = {item.post.id for item in queued}
        # Slots the posts that are not queued are at stay theirs.
        others = {
            item.slot_at
            for item in queues.posts_in(session, account_id=account_id, start=now, end=until)
            if item.post.id not in holders
        }
        free = (slot.at for slot in upcoming_slots(schedule, after=now, until=until) if slot.at not in others)
        moves, unchanged, without_slot = [], [], []
        for item in queued:
            assert item.post.id is not None
            target = next(free, None)
            if target is None:
                without_slot.append(item.post.id)
            elif target == item.slot_at and item.post.publish_at == target:
                unchanged.append(item.post.id)
            else:
                moves.append((item.post, item.post.publish_at, target))
        queues.move_claims(
            session, account_id=account_id, moves=[(post.id or 0, target) for post, _, target in moves]
        )
        return _Plan(moves, unchanged, without_slot)

    planned = await run_in_threadpool(plan)
    moved: list[ReflowedPost] = []
    refused = [
        ReflowRefusal(post_id=post_id, code="queue_full", detail="no free slot within the scheduling horizon")
        for post_id in planned.without_slot
    ]
    for post, previous, target in planned.moves:
        assert post.id is not None
        try:
            await post_changes.update_post(services, session, post, PostUpdate(publish_at=target))
        except ApiError as error:
            refused.append(ReflowRefusal(post_id=post.id, code=error.code, detail=error.detail))
            continue
        moved.append(ReflowedPost(post_id=post.id, previous_publish_at=previous, publish_at=target))
    return ReflowOut(moved=moved, unchanged=planned.unchanged, refused=refused)
