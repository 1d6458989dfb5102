"""/v1/posts: schedule, list, inspect, edit, cancel, publish now and retry posts.

Routes only route: each hands its request to a use case (``api.use_cases``). Changes are only accepted while a
post is scheduled (``ScheduledPostDep``), and a cancel, a reschedule or publish-now also while its media_publish call
is held until its publish time (``ChangeablePostDep``); once the call is out they answer 409 with the post's
current status.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response, status

from api.deps import CurrentUser, FailedPostDep, OwnedPostDep, ServicesDep, SessionDep
from api.openapi import problems
from api.schemas.common import DEFAULT_PAGE_SIZE, MAX_ID, MAX_PAGE_SIZE, QueryDatetime
from api.schemas.post_responses import PostDetail, PostOut, PostPage
from api.schemas.posts import PostCreate, PostUpdate, RetryRequest, SignalReason
from api.use_cases import post_changes, post_creation, post_reads
from chronogram.enums import PostStatus
from chronogram.models import Post

router = APIRouter(prefix="/v1/posts", tags=["posts"], responses=problems(401))


async def _changeable_post(post: OwnedPostDep, services: ServicesDep) -> Post:
    return await post_changes.changeable_post(services, post)


ChangeablePostDep = Annotated[Post, Depends(_changeable_post)]

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


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PostOut,
    summary="Schedule a post",
    description="Checks everything Instagram would reject at publish time (media count and kinds per type, "
    "aspect ratio, caption limits, which options a type takes, user tags, the time), records the post and "
    "starts its workflow. `publish_at` omitted means now. With an `Idempotency-Key`, a retried request returns "
    "the first request's post (header `Idempotent-Replayed: true`). On an account that needs reconnecting "
    "(its token expired, was revoked or lost the publishing permission), 409 `account_needs_reconnect`: "
    "connect it again first.",
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
    created = await post_creation.create_post(
        services, session, body, owner_id=user.user_id, idempotency_key=idempotency_key
    )
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return PostOut.from_row(created.post, created.media)


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
    start: Annotated[QueryDatetime | None, Query(alias="from", description="publish_at >= from")] = None,
    end: Annotated[QueryDatetime | None, Query(alias="to", description="publish_at < to")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> PostPage:
    return await post_reads.page_of_posts(
        session,
        owner_id=user.user_id,
        limit=limit,
        status=status_filter,
        account_id=account_id,
        start=start,
        end=end,
        cursor=cursor,
    )


@router.get(
    "/{post_id}",
    response_model=PostDetail,
    summary="A post, its live state and its history",
    description="While the post is scheduled or publishing, `live` is what its workflow says right now (and "
    "`status` and `publish_at` follow it); `events` is its history, oldest first.",
    responses=problems(404),
)
async def get_post(post: OwnedPostDep, services: ServicesDep, session: SessionDep) -> PostDetail:
    return await post_reads.post_detail(services, session, post)


@router.patch(
    "/{post_id}",
    response_model=PostDetail,
    summary="Edit or reschedule a scheduled post",
    description="Only while the post is scheduled, or `publishing` with its media_publish call still held until "
    "its publish time (then only a new `publish_at` takes effect). A new `publish_at` reschedules it (a signal to "
    "its workflow). Content edits are accepted until Instagram containers are prepared for it (about 10 minutes "
    "before publish time), as the content is fixed then; after that they answer 409 `post_content_locked`.",
    responses=problems(400, 404, 409, 415, 422, 503),
)
async def update_post(
    body: PostUpdate, post: ChangeablePostDep, services: ServicesDep, session: SessionDep
) -> PostDetail:
    return await post_changes.update_post(services, session, post, body)


@router.post(
    "/{post_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PostDetail,
    summary="Cancel a scheduled post",
    description="A signal to the post's workflow, which stops it (status `cancelled` shortly after), also while "
    'it is `publishing` with its media_publish call held until its publish time (step "publishing at the publish '
    'time; the call is held until then"). 409 once the call is out.',
    responses=problems(404, 409, 503),
)
async def cancel_post(
    post: ChangeablePostDep, services: ServicesDep, session: SessionDep, body: SignalReason | None = None
) -> PostDetail:
    return await post_changes.cancel_post(services, session, post, body.reason if body is not None else "")


@router.post(
    "/{post_id}/publish-now",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PostDetail,
    summary="Publish a scheduled post now",
    description="A signal to the post's workflow, which publishes it at once; its `publish_at` becomes the moment "
    "publishing began, so that lists by date (`from`, `to`) place it when it went out. Also accepted while the "
    "post is `publishing` with its media_publish call held until its publish time; 409 once the call is out.",
    responses=problems(404, 409, 503),
)
async def publish_now(
    post: ChangeablePostDep, services: ServicesDep, session: SessionDep, body: SignalReason | None = None
) -> PostDetail:
    return await post_changes.publish_now(services, session, post, body.reason if body is not None else "")


@router.post(
    "/{post_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PostDetail,
    summary="Retry a failed post",
    description="A failed post is scheduled again and gets a fresh workflow run, at `publish_at` if given, else "
    "at its original time or now if that has passed. 409 unless the post is failed, and 409 "
    "`account_needs_reconnect` while its account needs reconnecting.",
    responses=problems(404, 409, 422),
)
async def retry_post(
    post: FailedPostDep, services: ServicesDep, session: SessionDep, body: RetryRequest | None = None
) -> PostDetail:
    return await post_changes.retry_post(
        services, session, post, body.publish_at if body is not None else None
    )
