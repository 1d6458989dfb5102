"""/v1/accounts: connect, list, inspect and disconnect Instagram accounts."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.crud import accounts as crud
from api.deps import CurrentUser, OwnedAccountDep, ServicesDep, SessionDep
from api.openapi import problems
from api.schemas.accounts import AccountCreate, AccountDetail, AccountList, AccountOut, AccountUpdate
from api.use_cases import accounts

router = APIRouter(prefix="/v1/accounts", tags=["accounts"], responses=problems(401))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=AccountOut,
    summary="Connect (or reconnect) an Instagram account",
    description="Verifies the token with the Graph API (it must act for `ig_user_id`), exchanges a short-lived "
    "token for a long-lived one where the platform allows (and the Meta app's credentials are configured), "
    "stores it encrypted and returns the account with its status and `token_expires_at`, never the token. The "
    "token is then refreshed ahead of its expiry for as long as the account is connected.\n\n"
    "Connecting an account that is already connected replaces its token and answers 200: this is how an account "
    "that `needs_reconnect` is reconnected (it becomes `active`, the event is recorded, and its posts waiting for "
    "the reconnect go on at once). While the account is being disconnected, 409 `account_disconnecting`.",
    responses={
        200: {"model": AccountOut, "description": "Already connected: token replaced"},
        **problems(400, 409, 415, 422, 502),
    },
)
async def connect_account(
    body: AccountCreate, user: CurrentUser, services: ServicesDep, session: SessionDep, response: Response
) -> AccountOut:
    connected = await accounts.connect_account(
        services,
        session,
        owner_id=user.user_id,
        ig_user_id=body.ig_user_id,
        token=body.access_token.get_secret_value(),
        max_lateness_seconds=body.max_lateness_seconds,
        lateness_sent="max_lateness_seconds" in body.model_fields_set,
    )
    if not connected.created:
        response.status_code = status.HTTP_200_OK
    return AccountOut.from_row(connected.account, lead=services.settings.token_refresh_lead)


@router.get("", response_model=AccountList, summary="List connected accounts")
async def list_accounts(user: CurrentUser, session: SessionDep, services: ServicesDep) -> AccountList:
    rows = await run_in_threadpool(crud.list_accounts, session, owner_id=user.user_id)
    lead = services.settings.token_refresh_lead
    return AccountList(data=[AccountOut.from_row(row, lead=lead) for row in rows])


@router.get(
    "/{account_id}",
    response_model=AccountDetail,
    summary="An account, with its status, current publishing quota and latest events",
    description="The quota (posts published in Instagram's rolling 24 hours) is read live from the Graph API; "
    "if that fails the account is still returned, with `publishing_quota_error` saying why (and if Instagram "
    "refused the token, the account is `needs_reconnect` from then on). `events` lists the latest connects, token "
    "exchanges and refreshes, and why the account needed reconnecting.",
    responses=problems(404),
)
async def get_account(account: OwnedAccountDep, services: ServicesDep) -> AccountDetail:
    return await accounts.account_detail(services, account)


@router.patch(
    "/{account_id}",
    response_model=AccountOut,
    summary="Change an account's settings",
    description="`max_lateness_seconds`: how late outages may make the account's posts that set none themselves "
    "(read as each post's preparation begins, 10 minutes before its time); null restores the default, 24 h.",
    responses=problems(404, 415, 422),
)
async def update_account(
    account: OwnedAccountDep, body: AccountUpdate, session: SessionDep, services: ServicesDep
) -> AccountOut:
    updated = await accounts.update_account(session, account, body)
    return AccountOut.from_row(updated, lead=services.settings.token_refresh_lead)


@router.delete(
    "/{account_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Disconnect an account",
    description="All or nothing. Cancels the account's scheduled posts (nothing more is published to it), then "
    "deletes the account, its encrypted token and its posts' records; what was already published stays on "
    "Instagram. From the moment it is accepted the account takes no new posts (409 `account_disconnecting`).\n\n"
    "- **204**: done.\n"
    "- **202**: begun, and it completes on its own (a post still ending, or the scheduler failing midway): the "
    "account, with `disconnecting_since` set, until it is gone. Sending DELETE again carries on.\n"
    "- **409** `account_busy`: one of its posts is being published; nothing was changed.\n"
    "- **503** `workflows_unavailable`: the scheduler refused every cancellation; nothing was changed.",
    responses={
        202: {"model": AccountOut, "description": "Disconnection under way; it completes on its own"},
        **problems(404, 409, 503),
    },
)
async def disconnect_account(account: OwnedAccountDep, services: ServicesDep) -> Response:
    if await accounts.disconnect_account(services, account) is accounts.Disconnection.DONE:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    assert account.id is not None
    current = await accounts.account_or_none(services, account.id)
    if current is None:  # finished meanwhile (the reconciler)
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return JSONResponse(
        AccountOut.from_row(current, lead=services.settings.token_refresh_lead).model_dump(mode="json"),
        status_code=status.HTTP_202_ACCEPTED,
    )
