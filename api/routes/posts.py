"""/v1/posts: schedule, list, inspect, edit, cancel, publish now and retry posts.

Thin on purpose: validate, persist the request, and talk to the post's workflow. The workflow owns the post's
status from its creation on; its activities write the row. Changes are only accepted while a post is scheduled;
once publishing has begun they answer 409 with the post's current status.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, cast

from fastapi import APIRouter, Header, Query, Response, status
from pydantic import AwareDatetime
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from temporalio.service import RPCError

from api import workflows
from api.crud import posts as crud
from api.crud.owned import get_owned
from api.deps import AppServices, CurrentUser, OwnedPostDep, ServicesDep, SessionDep
from api.errors import ApiError, invalid, post_not_in_status
from api.openapi import problems
from api.schemas.common import DEFAULT_PAGE_SIZE, MAX_ID, MAX_PAGE_SIZE
from api.schemas.posts import (
    CarouselItemIn,
    PostCreate,
    PostDetail,
    PostOut,
    PostPage,
    PostUpdate,
    RetryRequest,
    SignalReason,
    UserTagIn,
)
from chronogram.contracts import MediaKind, PostState, PublishStep
from chronogram.enums import PostStatus, PostType
from chronogram.models import InstagramAccount, MediaAsset, Post, PostEvent, PostMedia, ReelOptions, UserTag
from chronogram.post_rules import MediaFacts, PostContent, Violation, post_violations, publish_at_violation
from chronogram.settings import Settings

log = logging.getLogger("chronogram.api.posts")

router = APIRouter(prefix="/v1/posts", tags=["posts"], responses=problems(401))

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Any unique string (e.g. a UUID). Repeating the request with the same key returns the post "
        "the first request created instead of scheduling another; the same key with a different body is refused.",
    ),
]


# --- create -------------------------------------------------------------------------------------------------------


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PostOut,
    summary="Schedule a post",
    description="Checks everything Instagram would reject at publish time (media count and kinds per type, "
    "aspect ratio, caption limits, which options a type takes, user tags, the time), records the post and "
    "starts its workflow. `publish_at` omitted means now. With an `Idempotency-Key`, a retried request returns "
    "the first request's post (header `Idempotent-Replayed: true`).",
    responses=problems(400, 409, 415, 422),
)
async def create_post(
    body: PostCreate,
    user: CurrentUser,
    services: ServicesDep,
    session: SessionDep,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> PostOut:
    fingerprint = _fingerprint(body) if idempotency_key is not None else None
    now = datetime.now(UTC)
    try:
        created = await run_in_threadpool(
            _create, session, body, user.user_id, services.settings, now, idempotency_key, fingerprint
        )
    except crud.IdempotencyKeyReused:
        raise ApiError(
            422,
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request; use a new key for a new post",
            field="Idempotency-Key",
        ) from None
    except crud.IdempotencyKeyInProgress:
        raise ApiError(
            409, "idempotency_key_in_progress", "the first request with this key is still running"
        ) from None
    except crud.ReferenceGone:
        raise ApiError(
            409, "reference_gone", "the account or a media was deleted meanwhile; check and retry"
        ) from None
    if created.start is not None:
        # On a replay too: if the first request died before starting the workflow, this starts it.
        await workflows.start_or_leave_to_reconciler(services, created.start, record_later=True)
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return PostOut.from_row(created.post, created.media)


def _create(
    session: Session,
    body: PostCreate,
    owner_id: int,
    settings: Settings,
    now: datetime,
    idempotency_key: str | None,
    fingerprint: str | None,
) -> crud.Created:
    """Everything a creation asks of the database, in one trip to the thread pool."""
    created = None
    if idempotency_key is not None and fingerprint is not None:
        # A replay is answered before validation: the first request was valid, and a retry that comes late
        # (its publish_at now past) must still get the first result, not an error.
        created = crud.find_replay(session, user_id=owner_id, key=idempotency_key, fingerprint=fingerprint)
    if created is None:
        new = _validated(session, body, owner_id, settings, now)
        created = crud.create_post(session, new=new, idempotency_key=idempotency_key, fingerprint=fingerprint)
    # End the read transaction (a replay's), so that the request holds no pooled connection while it awaits
    # Temporal.
    session.commit()
    return created


def _validated(
    session: Session, body: PostCreate, owner_id: int, settings: Settings, now: datetime
) -> crud.NewPost:
    violations: list[Violation] = []
    account = get_owned(session, InstagramAccount, owner_id=owner_id, row_id=body.account_id)
    if account is None:
        violations.append(Violation("account_id", "unknown_account", f"account {body.account_id} not found"))
    assets = crud.owned_media(session, owner_id=owner_id, media_ids=body.media_ids)
    for index, media_id in enumerate(body.media_ids):
        if media_id not in assets:
            violations.append(
                Violation(f"media_ids[{index}]", "unknown_media", f"media {media_id} not found")
            )
    if len(assets) == len(set(body.media_ids)):
        facts = [_facts(assets[media_id]) for media_id in body.media_ids]
        violations += post_violations(_content_of(body), facts)
    publish_at = body.publish_at or now
    problem = publish_at_violation(publish_at, now=now, **_window(settings))
    if problem is not None:
        violations.append(problem)
    if violations:
        raise invalid(violations)
    assert account is not None
    return crud.NewPost(
        owner_id=owner_id,
        account_id=body.account_id,
        account_username=account.username,
        post_type=body.type,
        media_ids=body.media_ids,
        # Within the tolerance, a moment ago means now: the workflow would publish at once either way.
        publish_at=max(publish_at, now),
        caption=body.caption,
        first_comment=body.first_comment,
        location_id=body.location_id,
        user_tags=_tags(body.user_tags),
        alt_text=body.alt_text,
        items=_items(body.items),
        reel_options=_reel_options(body),
    )


def _fingerprint(body: PostCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --- list and read ----------------------------------------------------------------------------------------------


@router.get(
    "",
    response_model=PostPage,
    summary="List posts by publish time",
    description="Ordered by `publish_at` (then id), oldest first, with cursor pagination: pass `next_cursor` "
    "back as `cursor` with the same filters. `from` is inclusive, `to` exclusive; write times with `Z` or "
    "URL-encode the `+` of an offset.",
    responses=problems(422),
)
async def list_posts(
    user: CurrentUser,
    session: SessionDep,
    status_filter: Annotated[PostStatus | None, Query(alias="status")] = None,
    account_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    start: Annotated[AwareDatetime | None, Query(alias="from", description="publish_at >= from")] = None,
    end: Annotated[AwareDatetime | None, Query(alias="to", description="publish_at < to")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> PostPage:
    after = _decode_cursor(cursor) if cursor is not None else None
    page, media, more = await run_in_threadpool(
        _page,
        session,
        owner_id=user.user_id,
        limit=limit,
        status=status_filter,
        account_id=account_id,
        start=start,
        end=end,
        after=after,
    )
    next_cursor = _encode_cursor(page[-1]) if more else None
    return PostPage(
        data=[PostOut.from_row(post, media[post.id or 0]) for post in page], next_cursor=next_cursor
    )


def _page(
    session: Session,
    *,
    owner_id: int,
    limit: int,
    status: PostStatus | None,
    account_id: int | None,
    start: datetime | None,
    end: datetime | None,
    after: tuple[datetime, int] | None,
) -> tuple[list[Post], dict[int, list[PostMedia]], bool]:
    """A page of posts, their media, and whether more follow (read as one post more than the page)."""
    rows = crud.list_posts(
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
    return page, crud.media_of(session, post_ids=[post.id for post in page if post.id]), len(rows) > limit


@router.get(
    "/{post_id}",
    response_model=PostDetail,
    summary="A post, its live state and its history",
    description="While the post is scheduled or publishing, `live` is what its workflow says right now (and "
    "`status` and `publish_at` follow it); `events` is its history, oldest first.",
    responses=problems(404),
)
async def get_post(post: OwnedPostDep, services: ServicesDep, session: SessionDep) -> PostDetail:
    return await _detail(services, session, post)


# --- changes while scheduled ------------------------------------------------------------------------------------


@router.patch(
    "/{post_id}",
    response_model=PostDetail,
    summary="Edit or reschedule a scheduled post",
    description="Only while the post is scheduled. A new `publish_at` reschedules it (a signal to its "
    "workflow). Content edits are accepted until Instagram containers are prepared for it (about 10 minutes "
    "before publish time), as the content is fixed then; after that they answer 409 `post_content_locked`.",
    responses=problems(400, 404, 409, 415, 422, 503),
)
async def update_post(
    body: PostUpdate, post: OwnedPostDep, services: ServicesDep, session: SessionDep
) -> PostDetail:
    assert post.id is not None
    fields = set(body.model_fields_set)
    if not fields:
        raise ApiError(422, "empty_update", "send at least one field to change")
    if "publish_at" in fields and body.publish_at is None:
        raise ApiError(
            422,
            "validation_error",
            "publish_at cannot be null; use publish-now to publish at once",
            field="publish_at",
        )
    if post.status is not PostStatus.SCHEDULED:
        raise post_not_in_status(post.id, post.status)
    content_fields = fields - {"publish_at"}
    await run_in_threadpool(_validate_update, session, post, body, content_fields, services.settings)

    state: PostState | None = None
    if content_fields:
        state = await _live(services, post.id)
        prepared = state is not None and state.step is not PublishStep.SCHEDULED
        if prepared or await run_in_threadpool(crud.has_containers, session, post_id=post.id):
            raise ApiError(
                409,
                "post_content_locked",
                f"post {post.id}'s Instagram containers are prepared, so its content is fixed; cancel it and "
                "schedule a new post to change it",
                current_status=PostStatus.SCHEDULED,
            )
    if body.publish_at is not None:
        publish_at = max(body.publish_at, datetime.now(UTC))
        state = await _signal(
            services,
            session,
            post,
            "reschedule",
            lambda: workflows.signal_reschedule(services, post.id or 0, publish_at),
        )
    if content_fields:
        values = {name: _column_value(body, name) for name in content_fields if name != "items"}
        items = _items(body.items) if "items" in content_fields else None
        if not await run_in_threadpool(
            crud.update_content, session, post_id=post.id, values=values, items=items
        ):
            current = await run_in_threadpool(_reload, session, post.id)
            raise post_not_in_status(post.id, current.status)
    return await _detail(services, session, post, state=state)


def _validate_update(
    session: Session, post: Post, body: PostUpdate, content_fields: set[str], settings: Settings
) -> None:
    violations: list[Violation] = []
    if content_fields:
        current = crud.media_of(session, post_ids=[post.id or 0])[post.id or 0]
        assets = crud.owned_media(
            session, owner_id=post.owner_id, media_ids=[item.media_id for item in current]
        )
        facts = [_facts(assets[item.media_id]) for item in current]
        stored_items = [{"alt_text": item.alt_text, "user_tags": list(item.user_tags)} for item in current]
        merged = PostContent(
            post_type=post.type,
            caption=body.caption if "caption" in content_fields else post.caption,
            first_comment=body.first_comment if "first_comment" in content_fields else post.first_comment,
            location_id=body.location_id if "location_id" in content_fields else post.location_id,
            user_tags=_tags(body.user_tags or []) if "user_tags" in content_fields else list(post.user_tags),
            alt_text=body.alt_text if "alt_text" in content_fields else post.alt_text,
            items=_items(body.items)
            if "items" in content_fields
            else (stored_items if post.type is PostType.CAROUSEL else None),
            reel_options=_reel_options(body) if "reel_options" in content_fields else post.reel_options,
        )
        violations += post_violations(merged, facts)
    if body.publish_at is not None:
        problem = publish_at_violation(body.publish_at, now=datetime.now(UTC), **_window(settings))
        if problem is not None:
            violations.append(problem)
    if violations:
        raise invalid(violations)


@router.post(
    "/{post_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PostDetail,
    summary="Cancel a scheduled post",
    description="A signal to the post's workflow, which stops it (status `cancelled` shortly after). 409 if "
    "publishing has already begun.",
    responses=problems(404, 409, 503),
)
async def cancel_post(
    post: OwnedPostDep, services: ServicesDep, session: SessionDep, body: SignalReason | None = None
) -> PostDetail:
    assert post.id is not None
    if post.status is not PostStatus.SCHEDULED:
        raise post_not_in_status(post.id, post.status)
    reason = body.reason if body is not None else ""
    state = await _signal(
        services, session, post, "cancel", lambda: workflows.signal_cancel(services, post.id or 0, reason)
    )
    return await _detail(services, session, post, state=state)


@router.post(
    "/{post_id}/publish-now",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PostDetail,
    summary="Publish a scheduled post now",
    description="A signal to the post's workflow, which publishes it at once. 409 if publishing has already begun.",
    responses=problems(404, 409, 503),
)
async def publish_now(
    post: OwnedPostDep, services: ServicesDep, session: SessionDep, body: SignalReason | None = None
) -> PostDetail:
    assert post.id is not None
    if post.status is not PostStatus.SCHEDULED:
        raise post_not_in_status(post.id, post.status)
    reason = body.reason if body is not None else ""
    state = await _signal(
        services,
        session,
        post,
        "publish_now",
        lambda: workflows.signal_publish_now(services, post.id or 0, reason),
    )
    return await _detail(services, session, post, state=state)


@router.post(
    "/{post_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PostDetail,
    summary="Retry a failed post",
    description="A failed post is scheduled again and gets a fresh workflow run, at `publish_at` if given, else "
    "at its original time or now if that has passed. 409 unless the post is failed.",
    responses=problems(404, 409, 422),
)
async def retry_post(
    post: OwnedPostDep, services: ServicesDep, session: SessionDep, body: RetryRequest | None = None
) -> PostDetail:
    assert post.id is not None
    if post.status is not PostStatus.FAILED:
        raise post_not_in_status(post.id, post.status, expected=PostStatus.FAILED)
    now = datetime.now(UTC)
    requested = body.publish_at if body is not None else None
    if requested is not None:
        problem = publish_at_violation(requested, now=now, **_window(services.settings))
        if problem is not None:
            raise invalid([problem])
    publish_at = max(requested or post.publish_at, now)
    # The failed run writes "failed" just before it ends: let it end, or the new start would find it running.
    if not await workflows.wait_closed(services, post.id, services.settings.api_workflow_wait_seconds):
        raise ApiError(409, "post_busy", f"post {post.id}'s last run is still ending; try again shortly")
    if not await run_in_threadpool(crud.begin_retry, session, post_id=post.id, publish_at=publish_at):
        current = await run_in_threadpool(_reload, session, post.id)
        raise post_not_in_status(post.id, current.status, expected=PostStatus.FAILED)
    request = await run_in_threadpool(_workflow_start, session, post.id)
    if request is not None:
        await workflows.start_or_leave_to_reconciler(services, request)
    return await _detail(services, session, post)


# --- helpers ----------------------------------------------------------------------------------------------------


async def _signal(
    services: AppServices, session: Session, post: Post, signal: str, send: Callable[[], Awaitable[None]]
) -> PostState | None:
    """Send a signal to a scheduled post's workflow and return its state afterwards; 409 if it was refused."""
    assert post.id is not None
    try:
        try:
            await send()
        except workflows.WorkflowMissing:
            # Finished since the row was read, or never started (its start was lost): look again.
            current = await run_in_threadpool(_reload, session, post.id)
            if current.status is not PostStatus.SCHEDULED:
                raise post_not_in_status(post.id, current.status) from None
            try:
                await workflows.ensure_started(services, post.id)
            except Exception:
                log.warning("could not start the missing workflow of post %s", post.id, exc_info=True)
                raise ApiError(
                    503, "workflows_unavailable", "the scheduler is unavailable; try again shortly"
                ) from None
            try:
                await send()
            except workflows.WorkflowMissing:
                current = await run_in_threadpool(_reload, session, post.id)
                raise post_not_in_status(post.id, current.status) from None
    except RPCError as error:
        log.warning("signal %s to post %s failed: %s", signal, post.id, error)
        raise ApiError(
            503, "workflows_unavailable", "the scheduler is unavailable; try again shortly"
        ) from None
    state = await _live(services, post.id)
    if workflows.refused(state, signal):
        assert state is not None
        if state.status is PostStatus.SCHEDULED:
            # Still "scheduled" only until the cancellation it already accepted is recorded.
            raise ApiError(
                409,
                "post_being_cancelled",
                f"post {post.id} is being cancelled: it can no longer be changed",
                current_status=state.status,
            )
        raise post_not_in_status(post.id, state.status)
    return state


async def _live(services: AppServices, post_id: int) -> PostState | None:
    try:
        return await workflows.query_state(services, post_id)
    except workflows.WorkflowMissing:
        return None


async def _detail(
    services: AppServices, session: Session, post: Post, *, state: PostState | None = None
) -> PostDetail:
    assert post.id is not None
    post_id = post.id
    if state is None and post.status in (PostStatus.SCHEDULED, PostStatus.PUBLISHING):
        try:
            state = await workflows.query_state(services, post_id)
        except workflows.WorkflowMissing:
            await _repair_lost_start(services, post)
    # This process may not have written the record of the post's start yet: its history must show it.
    await services.start_records.landed(post_id)
    # Read after asking the workflow, so that the row is never older than the live state shown with it.
    fresh, media, events = await run_in_threadpool(_stored, session, post_id)
    if fresh.status not in (PostStatus.SCHEDULED, PostStatus.PUBLISHING):
        state = None if state is None or state.status is not fresh.status else state
    return PostDetail.build(fresh, media, events, state)


async def _repair_lost_start(services: AppServices, post: Post) -> None:
    """A read of a scheduled post that has no workflow: the reconciler's job, done now."""
    grace = timedelta(seconds=services.settings.api_reconcile_grace_seconds)
    if post.status is not PostStatus.SCHEDULED or post.updated_at > datetime.now(UTC) - grace:
        return  # a young post is still being started by the request that created it
    try:
        await workflows.ensure_started(services, post.id or 0)
    except Exception:
        log.warning("could not start the missing workflow of post %s", post.id, exc_info=True)


def _reload(session: Session, post_id: int) -> Post:
    post = session.get(Post, post_id, populate_existing=True)
    assert post is not None
    return post


def _stored(session: Session, post_id: int) -> tuple[Post, list[PostMedia], list[PostEvent]]:
    return (
        _reload(session, post_id),
        crud.media_of(session, post_ids=[post_id])[post_id],
        crud.events_of(session, post_id=post_id),
    )


def _workflow_start(session: Session, post_id: int) -> crud.WorkflowStart | None:
    start = crud.workflow_start(session, post_id=post_id)
    # End the read transaction, so that the request holds no pooled connection while it awaits Temporal (and
    # then records the start on a second connection): otherwise ~15 concurrent requests exhaust the pool.
    session.commit()
    return start


def _window(settings: Settings) -> dict[str, timedelta]:
    return {
        "horizon": timedelta(days=settings.api_max_schedule_horizon_days),
        "past_tolerance": timedelta(seconds=settings.api_publish_at_past_tolerance_seconds),
    }


def _facts(asset: MediaAsset) -> MediaFacts:
    kind = MediaKind.VIDEO if asset.content_type.startswith("video/") else MediaKind.IMAGE
    return MediaFacts(
        kind=kind,
        size_bytes=asset.size_bytes,
        width=asset.width,
        height=asset.height,
        duration_ms=asset.duration_ms,
    )


def _tags(tags: list[UserTagIn]) -> list[UserTag]:
    # The schema has exactly the TypedDict's keys; None (an absent x or y) is left out, as Instagram wants.
    return [cast(UserTag, tag.model_dump(exclude_none=True)) for tag in tags]


def _items(items: list[CarouselItemIn] | None) -> list[dict[str, Any]] | None:
    if items is None:
        return None
    return [{"alt_text": item.alt_text, "user_tags": _tags(item.user_tags)} for item in items]


def _reel_options(body: PostCreate | PostUpdate) -> ReelOptions | None:
    if body.reel_options is None:
        return None
    return cast(ReelOptions, body.reel_options.model_dump(exclude_none=True))


def _content_of(body: PostCreate) -> PostContent:
    return PostContent(
        post_type=body.type,
        caption=body.caption,
        first_comment=body.first_comment,
        location_id=body.location_id,
        user_tags=_tags(body.user_tags),
        alt_text=body.alt_text,
        items=_items(body.items),
        reel_options=_reel_options(body),
    )


def _column_value(body: PostUpdate, name: str) -> Any:
    if name == "user_tags":
        return _tags(body.user_tags or [])
    if name == "reel_options":
        return _reel_options(body)
    return getattr(body, name)


def _encode_cursor(post: Post) -> str:
    raw = json.dumps([post.publish_at.astimezone(UTC).isoformat(), post.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        instant, post_id = datetime.fromisoformat(raw[0]), int(raw[1])
        if instant.tzinfo is None or not 1 <= post_id <= MAX_ID or isinstance(raw[1], bool):
            raise ValueError(cursor)
    except (ValueError, TypeError, IndexError, KeyError, binascii.Error, UnicodeDecodeError):
        raise ApiError(
            422, "invalid_cursor", "cursor is not a next_cursor from this list", field="cursor"
        ) from None
    return instant, post_id
