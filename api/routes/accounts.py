"""/v1/accounts: connect, list, inspect and disconnect Instagram accounts."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
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
    account, created = await accounts.connect_account(
        services,
        session,
        owner_id=user.user_id,
        ig_user_id=body.ig_user_id,
        token=body.access_token.get_secret_value(),
        max_lateness_seconds=body.max_lateness_seconds,
        lateness_sent="max_lateness_seconds" in body.model_fields_set,
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
    return await accounts.account_detail(services, account)


@router.patch(
    "/{account_id}",
    response_model=AccountOut,
    summary="Change an account's settings",
    description="`max_lateness_seconds`: how late outages may make the account's posts that set none themselves "
    "(read as each post's preparation begins, 10 minutes before its time); null restores the default, 24 h.",
    responses=problems(404, 415, 422),
)
async def update_account(account: OwnedAccountDep, body: AccountUpdate, session: SessionDep) -> AccountOut:
    return AccountOut.from_row(await accounts.update_account(session, account, body))


@router.delete(
    "/{account_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Disconnect an account",
    description="Cancels the account's scheduled posts (nothing more is published to it), then deletes the "
    "account, its encrypted token and its posts' records; what was already published stays on Instagram. "
    "Answers 409 while one of its posts is being published.",
    responses=problems(404, 409, 503),
)
async def disconnect_account(
    account: OwnedAccountDep, services: ServicesDep, session: SessionDep
) -> Response:
    await accounts.disconnect_account(services, session, account)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
