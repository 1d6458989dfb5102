"""/v1/accounts: connect, list, inspect and disconnect Instagram accounts."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Response, status
from starlette.concurrency import run_in_threadpool

from api import workflows
from api.crud import accounts as crud
from api.crud import posts as post_crud
from api.deps import CurrentUser, OwnedAccountDep, ServicesDep, SessionDep
from api.errors import ApiError
from api.openapi import problems
from api.schemas.accounts import AccountCreate, AccountDetail, AccountList, AccountOut, PublishingQuota
from chronogram.enums import PostStatus
from chronogram.instagram import GraphAPIError, GraphAuthError, GraphInvalidRequestError

log = logging.getLogger("chronogram.api.accounts")

router = APIRouter(prefix="/v1/accounts", tags=["accounts"], responses=problems(401))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=AccountOut,
    summary="Connect an Instagram account",
    description="Verifies the token with the Graph API (it must act for `ig_user_id`), stores it encrypted and "
    "returns the account, never the token. Connecting an account that is already connected replaces its token "
    "and answers 200.",
    responses={
        200: {"model": AccountOut, "description": "Already connected: token replaced"},
        **problems(400, 415, 422, 502),
    },
)
async def connect_account(
    body: AccountCreate, user: CurrentUser, services: ServicesDep, session: SessionDep, response: Response
) -> AccountOut:
    token = body.access_token.get_secret_value()
    try:
        found = await services.graph.get_account(access_token=token, ig_user_id=body.ig_user_id)
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
            f"Instagram refused to show account {body.ig_user_id} for this token: {error.message}",
            field="ig_user_id",
        ) from None
    if found.id != body.ig_user_id:
        raise ApiError(
            422,
            "instagram_account_mismatch",
            f"the token acts for account {found.id}, not {body.ig_user_id}",
            field="ig_user_id",
        )
    account, created = await run_in_threadpool(
        crud.connect_account,
        session,
        owner_id=user.user_id,
        ig_user_id=found.id,
        username=found.username or found.id,
        token_ciphertext=services.cipher.encrypt(token),
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return AccountOut.from_row(account)


@router.get("", response_model=AccountList, summary="List connected accounts")
async def list_accounts(user: CurrentUser, session: SessionDep) -> AccountList:
    rows = await run_in_threadpool(crud.list_accounts, session, owner_id=user.user_id)
    return AccountList(data=[AccountOut.from_row(row) for row in rows])


@router.get(
    "/{account_id}",
    response_model=AccountDetail,
    summary="An account, with its current publishing quota",
    description="The quota (posts published in Instagram's rolling 24 hours) is read live from the Graph API; "
    "if that fails the account is still returned, with `publishing_quota_error` saying why.",
    responses=problems(404),
)
async def get_account(account: OwnedAccountDep, services: ServicesDep) -> AccountDetail:
    base = AccountOut.from_row(account).model_dump()
    try:
        limit = await services.graph.get_publishing_limit(
            ig_user_id=account.ig_user_id,
            access_token=account.access_token(services.cipher).get_secret_value(),
        )
    except GraphAPIError as error:
        return AccountDetail(**base, publishing_quota=None, publishing_quota_error=error.user_message)
    return AccountDetail(**base, publishing_quota=PublishingQuota.from_limit(limit))


@router.delete(
    "/{account_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Disconnect an account",
    description="Cancels the account's scheduled posts (nothing more is published to it), then deletes the "
    "account, its encrypted token and its posts' records; what was already published stays on Instagram. "
    "Answers 409 while one of its posts is being published.",
    responses=problems(404, 409),
)
async def disconnect_account(
    account: OwnedAccountDep, services: ServicesDep, session: SessionDep
) -> Response:
    assert account.id is not None
    active = await run_in_threadpool(
        post_crud.posts_of_account, session, account_id=account.id, statuses=crud.ACTIVE_STATUSES
    )
    publishing = [post for post in active if post.status is PostStatus.PUBLISHING]
    if publishing:
        raise _busy(account.id, publishing[0].id)
    scheduled = [post.id for post in active if post.id is not None]
    await asyncio.gather(*(_cancel(services, post_id) for post_id in scheduled))
    timeout = services.settings.api_workflow_wait_seconds
    closed = await asyncio.gather(
        *(workflows.wait_closed(services, post_id, timeout) for post_id in scheduled)
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
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _cancel(services: ServicesDep, post_id: int) -> None:
    reason = "account disconnected"
    try:
        await workflows.signal_cancel(services, post_id, reason)
        return
    except workflows.WorkflowMissing:
        pass
    # Scheduled with no workflow: its start was lost. Start it so that the cancellation goes through the
    # workflow too; anything else would race the reconciler starting it.
    try:
        await workflows.ensure_started(services, post_id)
        await workflows.signal_cancel(services, post_id, reason)
    except Exception:
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
