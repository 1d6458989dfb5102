"""/v1/accounts/{id}/schedule and /v1/accounts/{id}/queue: an account's posting schedule, its coming slots with
their posts, and the reflow of queued posts into the schedule's slots."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from starlette.concurrency import run_in_threadpool

from api.crud import queues as crud
from api.deps import CurrentUser, OwnedAccountDep, ServicesDep, SessionDep
from api.errors import ApiError, not_found
from api.openapi import problems
from api.schemas.queues import Day, QueueOut, ReflowOut, ScheduleIn, ScheduleOut, SlotGroup
from api.use_cases import insights, queues

router = APIRouter(prefix="/v1/accounts/{account_id}", tags=["queues"], responses=problems(401))


@router.put(
    "/schedule",
    response_model=ScheduleOut,
    summary="Set the account's posting schedule",
    description="Weekly slots at wall-clock times in an IANA time zone; a 09:00 slot stays 09:00 local across "
    "daylight-saving changes. A slot in the spring-forward gap publishes at the same offset as before the change "
    "(02:30 becomes 03:30 that night); in the repeated hour, at the first of the two, once. Replaces the previous "
    "schedule. Posts already scheduled keep their times: `POST /v1/accounts/{id}/queue/reflow` moves them.",
    responses=problems(404, 415, 422),
)
async def put_schedule(
    account: OwnedAccountDep, body: ScheduleIn, user: CurrentUser, session: SessionDep
) -> ScheduleOut:
    assert account.id is not None
    row = await run_in_threadpool(
        crud.put_schedule, session, owner_id=user.user_id, account_id=account.id, schedule=body.schedule()
    )
    return queues.schedule_out(row)


@router.post(
    "/schedule/from-optimal-times",
    response_model=ScheduleOut,
    summary="Set the posting schedule to the account's best times",
    description="One call: the slots `GET /v1/accounts/{id}/optimal-times` answers for `time_zone` (at most 5, "
    "each at the top of its hour) become the account's posting schedule in that zone, replacing the previous one. "
    "Posts already scheduled keep their times: `POST /v1/accounts/{id}/queue/reflow` moves them. 409 "
    "`no_optimal_times` while the account has neither posts with insights nor audience data.",
    responses=problems(404, 409, 422),
)
async def schedule_from_optimal_times(
    account: OwnedAccountDep,
    user: CurrentUser,
    session: SessionDep,
    services: ServicesDep,
    time_zone: Annotated[
        str, Query(min_length=1, max_length=64, description="IANA time zone of the slots (default UTC)")
    ] = "UTC",
) -> ScheduleOut:
    assert account.id is not None
    best = await insights.optimal_times(services, account, time_zone)
    if not best.slots:
        raise ApiError(
            409,
            "no_optimal_times",
            f"account {account.id} has no best times yet: neither published posts with insights nor audience "
            "data (Instagram has none below 100 followers); set the schedule with PUT instead",
        )
    days = {day.value: day for day in Day}
    body = ScheduleIn(
        time_zone=best.time_zone,
        slots=[
            SlotGroup(days=[days[slot.weekday.value[:3]]], times=[f"{slot.hour:02d}:00"])
            for slot in best.slots
        ],
    )
    row = await run_in_threadpool(
        crud.put_schedule, session, owner_id=user.user_id, account_id=account.id, schedule=body.schedule()
    )
    return queues.schedule_out(row)


@router.get(
    "/schedule", response_model=ScheduleOut, summary="The account's posting schedule", responses=problems(404)
)
async def get_schedule(account: OwnedAccountDep, session: SessionDep) -> ScheduleOut:
    assert account.id is not None
    found = await run_in_threadpool(crud.schedule_of, session, account_id=account.id)
    if found is None:
        raise not_found("schedule", account.id)
    return queues.schedule_out(found[1])


@router.delete(
    "/schedule",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove the account's posting schedule",
    description="Queued posts keep their times; new posts can no longer be sent with `queue: true`.",
    responses=problems(404),
)
async def delete_schedule(account: OwnedAccountDep, session: SessionDep) -> Response:
    assert account.id is not None
    if not await run_in_threadpool(crud.delete_schedule, session, account_id=account.id):
        raise not_found("schedule", account.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/queue",
    response_model=QueueOut,
    summary="The coming slots of the account's schedule, with their posts",
    description="The next `limit` slots, each with the scheduled posts at that instant (a post sent with "
    "`queue: true` stays in its slot's list until it is published, fails or is cancelled). A slot with no post "
    "is free: the next `queue: true` post takes the first one.",
    responses=problems(404, 422),
)
async def get_queue(
    account: OwnedAccountDep,
    services: ServicesDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> QueueOut:
    return await queues.queue_view(services, session, account, limit=limit)


@router.post(
    "/queue/reflow",
    response_model=ReflowOut,
    summary="Move the queued posts into the schedule's slots",
    description="After a schedule change: the account's posts that were queued (sent with `queue: true`) and are "
    "still scheduled move, in their order, into the first free slots of the schedule as it is now. Each move is a "
    "reschedule through the post's workflow, as with PATCH /v1/posts/{id}; a post whose publishing began "
    "meanwhile stays where it is and is listed in `refused`.",
    responses=problems(404, 503),
)
async def reflow_queue(account: OwnedAccountDep, services: ServicesDep, session: SessionDep) -> ReflowOut:
    return await queues.reflow(services, session, account)
