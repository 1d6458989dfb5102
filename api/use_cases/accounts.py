"""Instagram accounts: connect one (its token verified with the Graph API), show one with its live publishing
quota, disconnect one (its scheduled posts cancelled through their workflows first)."""

from __future__ import annotations

import asyncio
import logging

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from temporalio.service import RPCError

from api import temporal_gateway
from api.crud import accounts as crud
from api.crud import posts as post_crud
from api.deps import AppServices
from api.errors import ApiError
from api.schemas.accounts import AccountDetail, AccountOut, AccountUpdate, PublishingQuota
from chronogram.contracts import CancelRequest
from chronogram.enums import PostStatus
from chronogram.instagram import GraphAPIError, GraphAuthError, GraphInvalidRequestError
from chronogram.models import InstagramAccount

log = logging.getLogger("chronogram.api.accounts")


async def connect_account(
    services: AppServices,
    session: Session,
    *,
    owner_id: int,
    ig_user_id: str,
    token: str,
    max_lateness_seconds: int | None = None,
    lateness_sent: bool = False,
) -> tuple[InstagramAccount, bool]:
    """Verify that ``token`` acts for ``ig_user_id`` and store it encrypted: a new account (True), or the one
    already connected with its token replaced (False)."""
    try:
        found = await services.graph.get_account(access_token=token, ig_user_id=ig_user_id)
    except GraphAuthError as error:
        raise ApiError(
            422,
            "instagram_token_rejected",
            f"Instagram refused the access token: {error.message}",
            field="access_token",
        ) from None
    except GraphAPIError as error:
        if not _account_refused(error):
            log.warning("Graph API error while verifying an account: %s", error)
            raise ApiError(
                502, "instagram_unavailable", "Instagram could not be reached; try again shortly"
            ) from None
        raise ApiError(
            422,
            "instagram_account_rejected",
            f"Instagram refused to show account {ig_user_id} for this token: {error.message}",
            field="ig_user_id",
        ) from None
    if found.id != ig_user_id:
        raise ApiError(
            422,
            "instagram_account_mismatch",
            f"the token acts for account {found.id}, not {ig_user_id}",
            field="ig_user_id",
        )
    return await run_in_threadpool(
        crud.connect_account,
        session,
        owner_id=owner_id,
        ig_user_id=found.id,
        username=found.username or found.id,
        token_ciphertext=services.cipher.encrypt(token),
        max_lateness_seconds=max_lateness_seconds,
        lateness_sent=lateness_sent,
    )


async def update_account(
    session: Session, account: InstagramAccount, body: AccountUpdate
) -> InstagramAccount:
    if not body.model_fields_set:
        raise ApiError(422, "empty_update", "send at least one field to change")
    assert account.id is not None
    return await run_in_threadpool(
        crud.update_settings, session, account_id=account.id, max_lateness_seconds=body.max_lateness_seconds
    )


async def account_detail(services: AppServices, account: InstagramAccount) -> AccountDetail:
    """The account with its publishing quota, read live; if that fails, with why instead."""
    base = AccountOut.from_row(account).model_dump()
    try:
        limit = await services.graph.get_publishing_limit(
            ig_user_id=account.ig_user_id,
            access_token=account.access_token(services.cipher).get_secret_value(),
        )
    except GraphAPIError as error:
        return AccountDetail(**base, publishing_quota=None, publishing_quota_error=error.user_message)
    return AccountDetail(**base, publishing_quota=PublishingQuota.from_limit(limit))


async def disconnect_account(services: AppServices, session: Session, account: InstagramAccount) -> None:
    """Cancel the account's scheduled posts and wait for their workflows to end, then delete the account and its
    posts' records; 409 while one of its posts is publishing."""
    assert account.id is not None
    active = await run_in_threadpool(
        post_crud.posts_of_account, session, account_id=account.id, statuses=crud.ACTIVE_STATUSES
    )
    publishing = [post for post in active if post.status is PostStatus.PUBLISHING]
    if publishing:
        raise _busy(account.id, publishing[0].id)
    scheduled = [post.id for post in active if post.id is not None]
    try:
        await asyncio.gather(*(_cancel(services, post_id) for post_id in scheduled))
    except RPCError as error:
        # Nothing is deleted: the posts whose cancellation went through are cancelled, the rest still scheduled.
        log.warning("could not cancel the posts of account %s: %s", account.id, error)
        raise ApiError(
            503, "workflows_unavailable", "the scheduler is unavailable; try again shortly"
        ) from None
    timeout = services.settings.api_workflow_wait_seconds
    closed = await asyncio.gather(
        *(temporal_gateway.wait_closed(services, post_id, timeout) for post_id in scheduled)
    )
    if not all(closed):
        raise ApiError(
            409,
            "account_busy",
            f"account {account.id}: its scheduled posts are still being cancelled; try again shortly",
        )
    remaining = await run_in_threadpool(crud.delete_account, session, account_id=account.id)
    if remaining:
        raise _busy(account.id, remaining[0].id)


async def _cancel(services: AppServices, post_id: int) -> None:
    # A post whose workflow is missing (its start was lost) gets one first, so that the cancellation goes through
    # the workflow too: anything else would race the reconciler starting it.
    try:
        await temporal_gateway.signal_post(services, post_id, CancelRequest("account disconnected"))
    except (temporal_gateway.SignalNotDelivered, temporal_gateway.StartFailed):
        log.warning("could not cancel post %s", post_id, exc_info=True)


def _account_refused(error: GraphAPIError) -> bool:
    # 100/33 ("object does not exist or cannot be loaded") is classed transient for reads of our own containers,
    # where Meta has returned it during incidents; here, on an id the user typed, it means the token has no
    # access to that account, which the user must fix.
    return isinstance(error, GraphInvalidRequestError) or (error.code == 100 and error.subcode == 33)


def _busy(account_id: int, post_id: int | None) -> ApiError:
    return ApiError(
        409,
        "account_busy",
        f"account {account_id}: post {post_id} is being published; disconnect it once that has finished",
    )
