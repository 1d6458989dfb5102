"""Drafts: posts saved without a workflow (POST /v1/posts with ``draft: true``), edited freely, scheduled later
(every rule checked then, and the workflow started as at creation), or deleted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api import temporal_gateway
from api.crud import posts as crud
from api.crud.accounts import AccountDisconnecting
from api.crud.owned import get_owned
from api.crud.workflow_starts import WorkflowStart, workflow_start
from api.deps import AppServices
from api.errors import ApiError, account_disconnecting, invalid
from api.schemas.post_responses import PostDetail
from api.schemas.posts import PostUpdate, media_facts
from api.use_cases.post_checks import check_update, publish_at_problem, refuse_if_needs_reconnect
from api.use_cases.post_reads import post_detail, reload
from chronogram import lifecycle
from chronogram.enums import PostStatus
from chronogram.models import InstagramAccount, Post
from chronogram.post_rules import Violation, post_violations
from chronogram.settings import Settings


def post_not_draft(post_id: int, current: PostStatus) -> ApiError:
    return ApiError(
        409,
        "post_not_draft",
        f"post {post_id} is {current.value}: only a draft can be",
        current_status=current,
    )


async def schedule_draft(
    services: AppServices, session: Session, post: Post, publish_at: datetime | None
) -> PostDetail:
    """Check the draft against every rule, schedule it and start its workflow. Idempotent: a draft already
    scheduled (by an earlier request) answers as it is now, and its workflow is started if it has none."""
    assert post.id is not None
    start = await run_in_threadpool(_schedule, session, post, publish_at, services.settings)
    if start is not None:
        await temporal_gateway.start_or_leave_to_reconciler(services, start, record_later=True)
    return await post_detail(services, session, await run_in_threadpool(reload, session, post.id))


def _schedule(
    session: Session, post: Post, publish_at: datetime | None, settings: Settings
) -> WorkflowStart | None:
    assert post.id is not None
    if post.status is not PostStatus.DRAFT:
        if crud.was_scheduled_from_draft(session, post_id=post.id):
            # A repeated request: the first one scheduled it; start its workflow if that start was lost.
            start = workflow_start(session, post_id=post.id) if post.status is PostStatus.SCHEDULED else None
            session.commit()
            return start
        raise post_not_draft(post.id, post.status)
    now = datetime.now(UTC)
    when = publish_at
    if when is None:
        tolerance = timedelta(seconds=settings.api_publish_at_past_tolerance_seconds)
        when = post.publish_at if post.publish_at >= now - tolerance else now
    violations = _violations(session, post, when, settings, now)
    if violations:
        raise invalid(violations)
    account = get_owned(session, InstagramAccount, owner_id=post.owner_id, row_id=post.account_id)
    assert account is not None  # posts_owner_id_account_id_fkey
    refuse_if_needs_reconnect(account, settings=settings, now=now)
    try:
        start = crud.schedule_draft(session, post_id=post.id, publish_at=max(when, now))
    except AccountDisconnecting as refused:
        raise account_disconnecting(refused.account_id) from None
    except lifecycle.IllegalTransition as illegal:
        assert illegal.current is not None
        raise post_not_draft(post.id, illegal.current) from None
    return start


def _violations(
    session: Session, post: Post, publish_at: datetime, settings: Settings, now: datetime
) -> list[Violation]:
    """Every rule, as a new post is checked: its media and content as stored, and its time."""
    assert post.id is not None
    media = crud.media_of(session, post_ids=[post.id])[post.id]
    assets = crud.owned_media(session, owner_id=post.owner_id, media_ids=[item.media_id for item in media])
    facts = [media_facts(assets[item.media_id]) for item in media]
    found = post_violations(PostUpdate().content_over(post, media), facts)
    problem = publish_at_problem(publish_at, settings=settings, now=now)
    return [*found, *([problem] if problem is not None else [])]


async def update_draft(services: AppServices, session: Session, post: Post, body: PostUpdate) -> PostDetail:
    """Edit a draft: its content and its planned time, checked as at its creation; no workflow to tell."""
    assert post.id is not None
    if not body.model_fields_set:
        raise ApiError(422, "empty_update", "send at least one field to change")
    if "publish_at" in body.model_fields_set and body.publish_at is None:
        raise ApiError(422, "validation_error", "publish_at cannot be null", field="publish_at")
    await run_in_threadpool(check_update, session, post, body, services.settings, draft=True)
    done = True
    if body.content_fields():
        done = await run_in_threadpool(
            crud.update_content,
            session,
            post_id=post.id,
            values=body.column_values(),
            items=body.carousel_item_values(),
            status=PostStatus.DRAFT,
        )
    if done and body.publish_at is not None:
        done = await run_in_threadpool(
            crud.set_draft_time, session, post_id=post.id, publish_at=body.publish_at
        )
    if not done:
        current = await run_in_threadpool(reload, session, post.id)
        raise post_not_draft(post.id, current.status)
    return await post_detail(services, session, post)


async def delete_draft(session: Session, post: Post) -> None:
    assert post.id is not None
    if post.status is not PostStatus.DRAFT or not await run_in_threadpool(
        crud.delete_draft, session, post_id=post.id
    ):
        current = await run_in_threadpool(reload, session, post.id)
        raise post_not_draft(post.id, current.status)
