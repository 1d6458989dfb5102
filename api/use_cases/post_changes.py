"""Changing a post: edit or reschedule it, cancel it or publish it now while it is scheduled, retry it once failed.

The workflow owns a post's status from its creation on; a change to its time or its fate is a signal to it, and
it refuses those once publishing has begun (409 with the post's current status), except while its media_publish
call is still held until its publish time (``changeable_post``). That the post is scheduled (or failed, for a
retry) when the request arrives is checked by the route's dependency (``api.deps``); the checks here catch what
changed since.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from temporalio.service import RPCError

from api import temporal_gateway
from api.crud import posts as crud
from api.crud import workflow_starts
from api.crud.accounts import AccountDisconnecting
from api.deps import AppServices
from api.errors import ApiError, account_disconnecting, invalid, not_found, post_not_in_status
from api.schemas.post_responses import PostDetail
from api.schemas.posts import PostUpdate
from api.temporal_gateway import SignalRequest
from api.use_cases import drafts
from api.use_cases.post_checks import check_update, publish_at_problem, refuse_if_needs_reconnect
from api.use_cases.post_reads import live_state, post_detail, reload
from chronogram.contracts import (
    CancelRequest,
    PostState,
    PublishNowRequest,
    PublishStep,
    RescheduleRequest,
    SignalRefusal,
    SignalVerdict,
)
from chronogram.enums import PostStatus
from chronogram.models import InstagramAccount, Post


async def update_post(services: AppServices, session: Session, post: Post, body: PostUpdate) -> PostDetail:
    """Edit a scheduled post's content until its Instagram containers are prepared; a new time reschedules it.
    A draft: see ``drafts.update_draft``."""
    assert post.id is not None
    if post.status is PostStatus.DRAFT:
        return await drafts.update_draft(services, session, post, body)
    if not body.model_fields_set:
        raise ApiError(422, "empty_update", "send at least one field to change")
    if "publish_at" in body.model_fields_set and body.publish_at is None:
        raise ApiError(
            422,
            "validation_error",
            "publish_at cannot be null; use publish-now to publish at once",
            field="publish_at",
        )
    await run_in_threadpool(check_update, session, post, body, services.settings)

    state: PostState | None = None
    if body.content_fields():
        state = await live_state(services, post.id)
        prepared = state is not None and state.step is not PublishStep.SCHEDULED
        if prepared or await run_in_threadpool(crud.has_containers, session, post_id=post.id):
            raise _content_locked(post.id, state.status if state is not None else post.status)
        # The content first: a new time may start publishing at once, which fixes the content, so an edit sent
        # after it could be refused with the time already changed.
        updated = await run_in_threadpool(
            crud.update_content,
            session,
            post_id=post.id,
            values=body.column_values(),
            items=body.carousel_item_values(),
        )
        if not updated:
            current = await run_in_threadpool(reload, session, post.id)
            if current.status is PostStatus.SCHEDULED:
                raise _content_locked(post.id, current.status)
            raise post_not_in_status(post.id, current.status)
    if body.publish_at is not None:
        publish_at = max(body.publish_at, datetime.now(UTC))
        state = await _signal(services, post.id, RescheduleRequest(publish_at=publish_at))
    return await post_detail(services, session, post, state=state)


async def changeable_post(services: AppServices, post: Post) -> Post:
    """``post`` if a cancel, reschedule or publish-now can still take effect: it is scheduled, or publishing with
    its media_publish call still held until its publish time (its workflow then accepts the signal, or refuses it
    if the call went out meanwhile). Else 409 with its status."""
    assert post.id is not None
    if post.status is PostStatus.PUBLISHING:
        state = await live_state(services, post.id)
        if state is not None and state.step is PublishStep.HOLDING:
            return post
    if post.status is not PostStatus.SCHEDULED:
        raise post_not_in_status(post.id, post.status)
    return post


def _content_locked(post_id: int, status: PostStatus) -> ApiError:
    """``status``: the post's, scheduled with its containers prepared, or publishing with its call held."""
    return ApiError(
        409,
        "post_content_locked",
        f"post {post_id}'s Instagram containers are prepared, so its content is fixed; cancel it and schedule a "
        "new post to change it",
        current_status=status,
    )


async def cancel_post(services: AppServices, session: Session, post: Post, reason: str) -> PostDetail:
    assert post.id is not None
    state = await _signal(services, post.id, CancelRequest(reason))
    return await post_detail(services, session, post, state=state)


async def publish_now(services: AppServices, session: Session, post: Post, reason: str) -> PostDetail:
    assert post.id is not None
    state = await _signal(services, post.id, PublishNowRequest(reason))
    return await post_detail(services, session, post, state=state)


async def retry_post(
    services: AppServices, session: Session, post: Post, requested: datetime | None
) -> PostDetail:
    """A failed post scheduled again, with a fresh workflow run: at ``requested``, else at its original time, or
    now if that has passed."""
    assert post.id is not None
    now = datetime.now(UTC)
    if requested is not None:
        problem = publish_at_problem(requested, settings=services.settings, now=now)
        if problem is not None:
            raise invalid([problem])
    publish_at = max(requested or post.publish_at, now)
    account = await run_in_threadpool(session.get, InstagramAccount, post.account_id)
    if account is not None:
        refuse_if_needs_reconnect(account, settings=services.settings, now=now)
    # The failed run writes "failed" just before it ends: let it end, or the new start would find it running.
    if not await temporal_gateway.wait_closed(services, post.id, services.settings.api_workflow_wait_seconds):
        raise ApiError(409, "post_busy", f"post {post.id}'s last run is still ending; try again shortly")
    try:
        retried = await run_in_threadpool(crud.begin_retry, session, post_id=post.id, publish_at=publish_at)
    except AccountDisconnecting as refused:
        raise account_disconnecting(refused.account_id) from None
    if not retried:
        current = await run_in_threadpool(reload, session, post.id)
        raise post_not_in_status(post.id, current.status, expected=PostStatus.FAILED)
    request = await run_in_threadpool(_workflow_start, session, post.id)
    if request is not None:
        await temporal_gateway.start_or_leave_to_reconciler(services, request)
    return await post_detail(services, session, post)


async def _signal(services: AppServices, post_id: int, signal: SignalRequest) -> PostState | None:
    """Send a signal to a scheduled post's workflow and return its state afterwards; 409 if it was refused."""
    try:
        request_id = await temporal_gateway.signal_post(services, post_id, signal)
    except temporal_gateway.SignalNotDelivered as missed:
        if missed.status is None:
            raise not_found("post", post_id) from None
        raise post_not_in_status(post_id, missed.status) from None
    except (temporal_gateway.StartFailed, RPCError):
        raise ApiError(
            503, "workflows_unavailable", "the scheduler is unavailable; try again shortly"
        ) from None
    outcome = await temporal_gateway.signal_outcome(services, post_id, request_id)
    if outcome is not None and outcome.verdict is SignalVerdict.REFUSED:
        if outcome.refusal is SignalRefusal.BEING_CANCELLED:
            # Still "scheduled" only until the cancellation it already accepted is recorded.
            raise ApiError(
                409,
                "post_being_cancelled",
                f"post {post_id} is being cancelled: it can no longer be changed",
                current_status=outcome.status,
            )
        raise post_not_in_status(post_id, outcome.status)
    return await live_state(services, post_id)


def _workflow_start(session: Session, post_id: int) -> workflow_starts.WorkflowStart | None:
    start = workflow_starts.workflow_start(session, post_id=post_id)
    # End the read transaction, so that the request holds no pooled connection while it awaits Temporal (and
    # then records the start on a second connection): otherwise ~15 concurrent requests exhaust the pool.
    session.commit()
    return start
