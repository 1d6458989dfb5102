"""Recurring series: create, read, edit and cancel them. Their occurrences are created by their workflow
(workflows/series.py), a bounded horizon ahead; here each change is recorded, then signalled to it (signal-with-
start, so that a workflow that had ended starts again).

What an edit changes: every occurrence more than ``EDIT_LEAD`` ahead. The ones not created yet follow the new
series when they are created. The ones created and still scheduled are cancelled through their workflows (their
history says why) and created again from the new series, at the new rule's times; an occurrence whose cancellation
is refused (it began publishing meanwhile) keeps its key, so it is never created twice. Occurrences closer than
``EDIT_LEAD`` (their containers may be prepared already), publishing or done are left as they are.

Cancelling a series cancels its scheduled occurrences, through their workflows, and creates no more.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from temporalio.service import RPCError

from api.crud import posts as post_crud
from api.crud import series as crud
from api.crud.owned import get_owned
from api.deps import AppServices
from api.errors import ApiError, invalid
from api.schemas.posts import media_facts
from api.schemas.series import OccurrenceOut, SeriesCreate, SeriesDetail, SeriesOut, SeriesUpdate, UpcomingOut
from api.use_cases import post_changes
from api.use_cases.post_checks import publish_at_problem
from chronogram.enums import PostType, SeriesStatus
from chronogram.models import InstagramAccount, Series
from chronogram.post_rules import PostContent, Violation, post_violations
from chronogram.recurrence import Recurrence, RecurrenceRefused, checked, occurrences
from chronogram.scheduling import start_series_workflow

EDIT_LEAD = timedelta(minutes=15)
_UPCOMING = 5


def _violations(
    session: Session,
    *,
    owner_id: int,
    account_id: int,
    post_type: PostType,
    media_ids: list[int],
    caption: str | None,
    first_comment: str | None,
) -> list[Violation]:
    """What the post rules say of every occurrence of this content (the rules of POST /v1/posts)."""
    found: list[Violation] = []
    if get_owned(session, InstagramAccount, owner_id=owner_id, row_id=account_id) is None:
        found.append(Violation("account_id", "unknown_account", f"account {account_id} not found"))
    assets = post_crud.owned_media(session, owner_id=owner_id, media_ids=media_ids)
    for index, media_id in enumerate(media_ids):
        if media_id not in assets:
            found.append(Violation(f"media_ids[{index}]", "unknown_media", f"media {media_id} not found"))
    if len(assets) == len(set(media_ids)):
        content = PostContent(post_type=post_type, caption=caption, first_comment=first_comment)
        found += post_violations(content, [media_facts(assets[media_id]) for media_id in media_ids])
    return found


def _recurrence(
    rule: str, starts_at: datetime, time_zone: str, now: datetime, services: AppServices
) -> tuple[Recurrence | None, list[Violation]]:
    try:
        recurrence = checked(rule, starts_at=starts_at, time_zone=time_zone, now=now)
    except RecurrenceRefused as refused:
        return None, [Violation(refused.field, refused.code, refused.message)]
    first = next(occurrences(recurrence, after=now, until=now + timedelta(days=3660)), None)
    if first is not None:
        problem = publish_at_problem(first.at, settings=services.settings, now=now)
        if problem is not None and problem.code == "publish_at_too_far":
            return None, [
                Violation("starts_at", problem.code, f"the first occurrence is too far: {problem.message}")
            ]
    return recurrence, []


async def _signal(services: AppServices, row: Series) -> None:
    assert row.id is not None
    await start_series_workflow(services.temporal, series_id=row.id, account_id=row.account_id)


async def create_series(
    services: AppServices, session: Session, body: SeriesCreate, *, owner_id: int
) -> Series:
    now = datetime.now(UTC)

    def record() -> Series:
        found = _violations(
            session,
            owner_id=owner_id,
            account_id=body.account_id,
            post_type=body.type,
            media_ids=body.media_ids,
            caption=body.caption,
            first_comment=body.first_comment,
        )
        recurrence, refused = _recurrence(body.rule, body.starts_at, body.time_zone, now, services)
        if found or refused:
            raise invalid(found + refused)
        assert recurrence is not None
        return crud.add_series(
            session,
            Series(
                owner_id=owner_id,
                account_id=body.account_id,
                type=body.type,
                media_ids=body.media_ids,
                caption=body.caption,
                first_comment=body.first_comment,
                rule=recurrence.rule,
                starts_at=recurrence.starts_at.strftime("%Y-%m-%dT%H:%M"),
                time_zone=body.time_zone,
            ),
        )

    row = await run_in_threadpool(record)
    try:
        await _signal(services, row)
    except RPCError:
        # Nothing would create its occurrences: the series is not kept, and the client may simply retry.
        assert row.id is not None
        await run_in_threadpool(crud.delete_series, session, series_id=row.id)
        raise ApiError(
            503, "workflows_unavailable", "the scheduler is unavailable; try again shortly"
        ) from None
    return row


async def update_series(
    services: AppServices, session: Session, row: Series, body: SeriesUpdate
) -> SeriesDetail:
    assert row.id is not None
    sent = body.model_fields_set
    if not sent:
        raise ApiError(422, "empty_update", "send at least one field to change")
    for name in ("media_ids", "rule", "starts_at", "time_zone"):
        if name in sent and getattr(body, name) is None:
            raise ApiError(422, "validation_error", f"{name} cannot be null", field=name)
    if row.status is not SeriesStatus.ACTIVE:
        raise ApiError(409, "series_cancelled", f"series {row.id} is cancelled; create a new one")
    now = datetime.now(UTC)
    media_ids = body.media_ids if body.media_ids is not None else list(row.media_ids)
    caption = body.caption if "caption" in sent else row.caption
    first_comment = body.first_comment if "first_comment" in sent else row.first_comment
    rule = body.rule if body.rule is not None else row.rule
    starts_at = body.starts_at if body.starts_at is not None else datetime.fromisoformat(row.starts_at)
    time_zone = body.time_zone if body.time_zone is not None else row.time_zone

    def record() -> Series:
        found = _violations(
            session,
            owner_id=row.owner_id,
            account_id=row.account_id,
            post_type=row.type,
            media_ids=media_ids,
            caption=caption,
            first_comment=first_comment,
        )
        recurrence, refused = _recurrence(rule, starts_at, time_zone, now, services)
        if found or refused:
            raise invalid(found + refused)
        assert recurrence is not None
        row.media_ids = media_ids
        row.caption = caption
        row.first_comment = first_comment
        row.rule = recurrence.rule
        row.starts_at = recurrence.starts_at.strftime("%Y-%m-%dT%H:%M")
        row.time_zone = time_zone
        return crud.save(session, row)

    await run_in_threadpool(record)
    # The created occurrences still ahead are made again from the series as it is now.
    ahead = await run_in_threadpool(
        crud.scheduled_occurrences, session, series_id=row.id, after=now + EDIT_LEAD
    )
    released = []
    for key, post in ahead:
        try:
            await post_changes.cancel_post(services, session, post, f"series {row.id} was edited")
        except ApiError:
            continue  # publishing began, or the scheduler is unavailable: it stays, with its key
        released.append(key)
    await run_in_threadpool(crud.release, session, series_id=row.id, keys=released)
    await _signal_or_503(services, row)
    return await series_detail(session, row)


async def cancel_series(services: AppServices, session: Session, row: Series) -> SeriesDetail:
    assert row.id is not None
    if row.status is SeriesStatus.ACTIVE:
        await run_in_threadpool(crud.cancel, session, row)
    ahead = await run_in_threadpool(
        crud.scheduled_occurrences, session, series_id=row.id, after=datetime.now(UTC) - timedelta(days=1)
    )
    for _key, post in ahead:
        try:
            await post_changes.cancel_post(services, session, post, f"series {row.id} was cancelled")
        except ApiError as refused:
            if refused.status == 503:
                raise
            # 409: it began publishing meanwhile, and goes out.
    await _signal_or_503(services, row)
    return await series_detail(session, row)


async def _signal_or_503(services: AppServices, row: Series) -> None:
    try:
        await _signal(services, row)
    except RPCError:
        raise ApiError(
            503,
            "workflows_unavailable",
            "the change is recorded, but the scheduler is unavailable; send it again",
        ) from None


async def series_detail(session: Session, row: Series) -> SeriesDetail:
    assert row.id is not None
    series_id = row.id

    def read() -> SeriesDetail:
        rows = crud.occurrences_of(session, series_id=series_id)
        session.commit()
        created = {item.key for item in rows}
        upcoming: list[UpcomingOut] = []
        if row.status is SeriesStatus.ACTIVE:
            recurrence = Recurrence(row.rule, datetime.fromisoformat(row.starts_at), row.time_zone)
            now = datetime.now(UTC)
            for occurrence in occurrences(recurrence, after=now, until=now + timedelta(days=3660)):
                if occurrence.key not in created:
                    upcoming.append(UpcomingOut(local_time=occurrence.key, at=occurrence.at))
                if len(upcoming) >= _UPCOMING:
                    break
        return SeriesDetail(
            **SeriesOut.from_row(row).model_dump(),
            occurrences=[
                OccurrenceOut(
                    local_time=item.key,
                    post_id=item.post.id if item.post is not None else None,
                    status=item.post.status if item.post is not None else None,
                    publish_at=item.post.publish_at if item.post is not None else None,
                    problem=item.problem,
                )
                for item in rows
            ],
            upcoming=upcoming,
        )

    return await run_in_threadpool(read)
