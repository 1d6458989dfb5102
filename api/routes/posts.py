"""/v1/posts: schedule, list, inspect, edit, cancel, publish now and retry posts.

Routes only route: each hands its request to a use case (``api.use_cases``). Changes are only accepted while a
post is scheduled (or a draft, for an edit), and a cancel, a reschedule or publish-now also while its media_publish call
is held until its publish time (``ChangeablePostDep``); once the call is out they answer 409 with the post's
current status.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status

from api.batch_bodies import read_batch
from api.deps import CurrentUser, FailedPostDep, OwnedPostDep, ServicesDep, SessionDep
from api.openapi import problems
from api.schemas.batch import MAX_STAGGER_MINUTES, BatchOut
from api.schemas.common import DEFAULT_PAGE_SIZE, MAX_ID, MAX_PAGE_SIZE, QueryDatetime
from api.schemas.post_responses import PostDetail, PostOut, PostPage
from api.schemas.posts import PostCreate, PostUpdate, RetryRequest, ScheduleRequest, SignalReason
from api.use_cases import drafts, post_batch, post_changes, post_creation, post_reads
from chronogram.enums import PostStatus
from chronogram.models import Post

router = APIRouter(prefix="/v1/posts", tags=["posts"], responses=problems(401))


async def _changeable_post(post: OwnedPostDep, services: ServicesDep) -> Post:
    return await post_changes.changeable_post(services, post)


ChangeablePostDep = Annotated[Post, Depends(_changeable_post)]


async def _editable_post(post: OwnedPostDep, services: ServicesDep) -> Post:
    """A draft, or a post a change can still reach (``ChangeablePostDep``)."""
    if post.status is PostStatus.DRAFT:
        return post
    return await post_changes.changeable_post(services, post)


EditablePostDep = Annotated[Post, Depends(_editable_post)]

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
    "starts its workflow. `publish_at` omitted means now. The caption is either `caption`, or a template "
    "(`template_id`) rendered with `variables` (a missing variable: 422 `template_variable_missing`). With "
    "`draft: true` the post is saved as a draft: no workflow until `POST /v1/posts/{id}/schedule`. With an `Idempotency-Key`, a retried request returns "
    "the first request's post (header `Idempotent-Replayed: true`). On an account that needs reconnecting "
    "(its token expired, was revoked or lost the publishing permission), 409 `account_needs_reconnect`: "
    "connect it again first.",
    responses=problems(400, 409, 415, 422),
)
async def create_post(
    body: PostCreate,
    user: CurrentUser,
    services: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> PostOut:
    # No SessionDep: the use case opens its session in the thread that does the database work.
    created = await post_creation.create_post(
        services, None, body, owner_id=user.user_id, idempotency_key=idempotency_key
    )
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return PostOut.from_row(created.post, created.media)


_BATCH_CSV_EXAMPLE = (
    "account_id,type,media_ids,caption,publish_at,idempotency_key\n"
    "1,IMAGE,7,Rye today #bakery,2026-12-01T09:00:00+01:00,week-48-rye\n"
    "1,CAROUSEL,8 9 10,Three loaves,2026-12-01T12:00:00+01:00,week-48-loaves\n"
)


@router.post(
    "/batch",
    response_model=BatchOut,
    summary="Schedule up to 100 posts at once (JSON or CSV)",
    description="Each item is a `POST /v1/posts` body, created as that route would create it, in order, each "
    "under its own `idempotency_key` (retrying the batch creates each post once, and answers the first "
    "creation with status 200). An item refused does not stop the others: **the batch answers 200 once it is "
    "processed, whatever its items' fates**, and `results` has one entry per item, in order: the created post "
    "(`status` 201, or 200 when replayed) or the problem `POST /v1/posts` would have answered (`status` 4xx). "
    "`stagger` gives item `i` the time `start_at + i × every_minutes`. Only a body that is not a list of 1 to "
    "100 objects (or a bad `stagger`) is refused as a whole, with 422.\n\n"
    "**CSV** (`text/csv`, UTF-8): a header row naming the columns (any of `account_id`, `type`, `media_ids` "
    "(ids separated by spaces, commas or semicolons), `caption`, `first_comment`, `publish_at`, `template_id`, "
    "`variables` (a JSON object), `draft` (`true`/`false`), `idempotency_key`, `location_id`, `alt_text`, "
    "`max_lateness_seconds`), then one post per row; an empty cell leaves the field out. The stagger is given "
    "as the query parameters `stagger_start_at` and `stagger_every_minutes`.",
    responses=problems(400, 415, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/PostBatch"}},
                "text/csv": {"schema": {"type": "string"}, "example": _BATCH_CSV_EXAMPLE},
            },
        }
    },
)
async def create_batch(
    request: Request,
    user: CurrentUser,
    services: ServicesDep,
    session: SessionDep,
    stagger_start_at: Annotated[
        QueryDatetime | None, Query(description="CSV only: the first row's time (with a time zone)")
    ] = None,
    stagger_every_minutes: Annotated[
        int | None, Query(ge=0, le=MAX_STAGGER_MINUTES, description="CSV only: minutes between two rows")
    ] = None,
) -> BatchOut:
    stagger = {
        name: value
        for name, value in (("start_at", stagger_start_at), ("every_minutes", stagger_every_minutes))
        if value is not None
    }
    body = await read_batch(request, stagger)
    return await post_batch.create_batch(
        services, session, body, owner_id=user.user_id, instance=request.url.path
    )


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
    "/{post_id:int}",
    response_model=PostDetail,
    summary="A post, its live state and its history",
    description="While the post is scheduled or publishing, `live` is what its workflow says right now (and "
    "`status` and `publish_at` follow it); `events` is its history, oldest first.",
    responses=problems(404),
)
async def get_post(post: OwnedPostDep, services: ServicesDep, session: SessionDep) -> PostDetail:
    return await post_reads.post_detail(services, session, post)


@router.patch(
    "/{post_id:int}",
    response_model=PostDetail,
    summary="Edit or reschedule a scheduled post, or edit a draft",
    description="Only while the post is scheduled, a draft, or `publishing` with its media_publish call still "
    "held until its publish time (then only a new `publish_at` takes effect). A new `publish_at` reschedules a "
    "scheduled post (a signal to its workflow). Content edits are accepted until Instagram containers are "
    "prepared for it (about 10 minutes before publish time), as the content is fixed then; after that they "
    "answer 409 `post_content_locked`. A draft's content and time change as they are, checked like the draft was.",
    responses=problems(400, 404, 409, 415, 422, 503),
)
async def update_post(
    body: PostUpdate, post: EditablePostDep, services: ServicesDep, session: SessionDep
) -> PostDetail:
    return await post_changes.update_post(services, session, post, body)


@router.post(
    "/{post_id:int}/cancel",
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
    "/{post_id:int}/publish-now",
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
    "/{post_id:int}/retry",
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


_NOT_DRAFT = (
    "The post is not a draft (`post_not_draft`, with its `current_status`), or its account needs reconnecting",
    {
        "code": "post_not_draft",
        "detail": "post 42 is published: only a draft can be",
        "current_status": "published",
    },
)


@router.post(
    "/{post_id:int}/schedule",
    response_model=PostDetail,
    summary="Schedule a draft",
    description="Checks the draft against every rule, as a new post is checked (422 with every violation), "
    "and starts its workflow: at `publish_at` if given, else at the draft's `publish_at`, or now if that has "
    "passed. Idempotent: repeating it once the draft is scheduled answers with the post as it is now. 409 "
    "`post_not_draft` for a post that was never a draft, and `account_needs_reconnect` while its account "
    "needs reconnecting.",
    responses=problems(400, 404, 409, 415, 422, examples={409: _NOT_DRAFT}),
)
async def schedule_draft(
    post: OwnedPostDep, services: ServicesDep, session: SessionDep, body: ScheduleRequest | None = None
) -> PostDetail:
    return await drafts.schedule_draft(services, session, post, body.publish_at if body is not None else None)


@router.delete(
    "/{post_id:int}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a draft",
    description="A draft has no workflow: it is deleted with its history. Any other post answers 409 "
    "`post_not_draft` (cancel a scheduled post instead).",
    responses=problems(404, 409, examples={409: _NOT_DRAFT}),
)
async def delete_draft(post: OwnedPostDep, session: SessionDep) -> Response:
    await drafts.delete_draft(session, post)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
