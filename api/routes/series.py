"""/v1/series: recurring posts. A series' occurrences become ordinary posts 30 days ahead (its workflow creates
them), each publishing at its local wall-clock time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, status
from starlette.concurrency import run_in_threadpool

from api.crud import series as crud
from api.deps import CurrentUser, ServicesDep, SessionDep
from api.errors import not_found
from api.openapi import problems
from api.schemas.common import MAX_ID
from api.schemas.series import SeriesCreate, SeriesDetail, SeriesList, SeriesOut, SeriesUpdate
from api.use_cases import series
from chronogram.models import Series

router = APIRouter(prefix="/v1/series", tags=["series"], responses=problems(401))


def get_owned_series(
    series_id: Annotated[int, Path(ge=1, le=MAX_ID)], user: CurrentUser, session: SessionDep
) -> Series:
    row = crud.owned_series(session, owner_id=user.user_id, series_id=series_id)
    session.commit()
    if row is None:
        raise not_found("series", series_id)
    return row


OwnedSeriesDep = Annotated[Series, Depends(get_owned_series)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SeriesOut,
    summary="Create a recurring series",
    description="Content (checked with the rules of POST /v1/posts), an RRULE read in local time from `starts_at` "
    "in `time_zone`. Its occurrences become ordinary posts up to 30 days ahead, created by the series' workflow; "
    "each publishes at its local wall-clock time across daylight-saving changes (one in the spring-forward gap "
    "moves forward by the gap; in the repeated hour, the first one). Rules more often than hourly, or that never "
    "occur, are refused (422 naming `rule`).",
    responses=problems(415, 422, 503),
)
async def create_series(
    body: SeriesCreate, user: CurrentUser, services: ServicesDep, session: SessionDep
) -> SeriesOut:
    row = await series.create_series(services, session, body, owner_id=user.user_id)
    return SeriesOut.from_row(row)


@router.get("", response_model=SeriesList, summary="List recurring series")
async def list_series(user: CurrentUser, session: SessionDep) -> SeriesList:
    rows = await run_in_threadpool(crud.list_series, session, owner_id=user.user_id)
    return SeriesList(data=[SeriesOut.from_row(row) for row in rows])


@router.get(
    "/{series_id}",
    response_model=SeriesDetail,
    summary="A series, its created occurrences and the next ones",
    responses=problems(404),
)
async def get_series(row: OwnedSeriesDep, session: SessionDep) -> SeriesDetail:
    return await series.series_detail(session, row)


@router.patch(
    "/{series_id}",
    response_model=SeriesDetail,
    summary="Edit a series",
    description="Changes every occurrence more than 15 minutes ahead: those not created yet follow the new "
    "series, and those created and still scheduled are cancelled and created again from it (at the new rule's "
    "times). Occurrences closer than that, publishing or done stay as they are. 409 once the series is cancelled.",
    responses=problems(404, 409, 415, 422, 503),
)
async def update_series(
    row: OwnedSeriesDep, body: SeriesUpdate, services: ServicesDep, session: SessionDep
) -> SeriesDetail:
    return await series.update_series(services, session, row, body)


@router.delete(
    "/{series_id}",
    response_model=SeriesDetail,
    summary="Cancel a series",
    description="No occurrence is created any more, and its scheduled occurrences are cancelled through their "
    "workflows; one that began publishing meanwhile goes out. The series stays, `cancelled`, with its history.",
    responses=problems(404, 503),
)
async def cancel_series(row: OwnedSeriesDep, services: ServicesDep, session: SessionDep) -> SeriesDetail:
    return await series.cancel_series(services, session, row)
