"""Instagram accounts: connect one (its token verified with the Graph API), show one with its live publishing
quota, disconnect one (its scheduled posts cancelled through their workflows first)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, TypeVar

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from temporalio.service import RPCError, RPCStatusCode

from activities import account_status
from api import account_workflows, temporal_gateway
from api.crud import accounts as crud
from api.crud import posts as post_crud
from api.deps import AppServices
from api.errors import ApiError, account_disconnecting
from api.schemas.accounts import AccountDetail, AccountEventOut, AccountOut, AccountUpdate, PublishingQuota
from chronogram.contracts import CancelRequest
from chronogram.enums import PostStatus
from chronogram.instagram import GraphAPIError, GraphAuthError, GraphInvalidRequestError
from chronogram.models import InstagramAccount
from chronogram.settings import GraphLogin

log = logging.getLogger("chronogram.api.accounts")

_T = TypeVar("_T")


async def connect_account(
    services: AppServices,
    session: Session,
    *,
    owner_id: int,
    ig_user_id: str,
    token: str,
    max_lateness_seconds: int | None = None,
    lateness_sent: bool = False,
) -> crud.Connected:
    """Verify that ``token`` acts for ``ig_user_id`` and store it encrypted, long-lived where the platform allows
    and with its expiry where it can be known: a new account, or the one already connected with its token
    replaced (a reconnect, which makes it active again and resumes its waiting posts). Then the account's token
    workflow is started, or told of the new token."""
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
    lasting = await long_lived(services, token)
    username = found.username or found.id
    try:
        connected = await run_in_threadpool(
            crud.connect_account,
            session,
            owner_id=owner_id,
            ig_user_id=found.id,
            username=username,
            token=crud.ConnectedToken(
                ciphertext=services.cipher.encrypt(lasting.token),
                expires_at=lasting.expires_at,
                exchanged=lasting.exchanged,
            ),
            max_lateness_seconds=max_lateness_seconds,
            lateness_sent=lateness_sent,
        )
    except crud.AccountDisconnecting as refused:
        raise account_disconnecting(refused.account_id) from None
    account_id = connected.account.id
    assert account_id is not None
    await account_workflows.token_replaced(services, account_id, username)
    if connected.was_needing_reconnect:
        told = await account_workflows.resume_waiting_posts(services, account_id, datetime.now(UTC))
        log.info("account %s reconnected: told %s scheduled posts", account_id, told)
    return connected


@dataclass(frozen=True)
class LastingToken:
    token: str = field(repr=False)
    expires_at: datetime | None
    exchanged: bool


# A Facebook Login user token expiring sooner than this is a short-lived one (hours), worth exchanging.
_SHORT_LIVED = timedelta(days=1)


async def long_lived(services: AppServices, token: str) -> LastingToken:
    """The token to store and its expiry: exchanged for a long-lived one where the platform allows and the app's
    credentials are configured; inspected with debug_token (Facebook Login). Instagram Login tokens cannot be
    inspected: without an exchange their expiry is learnt from their first refresh. Only a token Meta says is
    invalid is refused (422); an exchange or an inspection that fails otherwise keeps the token as given."""
    settings, graph = services.settings, services.graph
    secret = settings.meta_app_secret.get_secret_value()
    now = datetime.now(UTC)
    if settings.login is GraphLogin.INSTAGRAM:
        if not secret:
            return LastingToken(token, None, exchanged=False)
        try:
            grant = await graph.exchange_instagram_token(access_token=token, client_secret=secret)
        except GraphAPIError as error:
            # Most often a token that is long-lived already: only short-lived ones can be exchanged.
            log.info("kept the token as given: the exchange was refused: %s", error)
            return LastingToken(token, None, exchanged=False)
        expires_at = now + grant.expires_in if grant.expires_in is not None else None
        return LastingToken(grant.access_token, expires_at, exchanged=True)
    if not (secret and settings.meta_app_id):
        return LastingToken(token, None, exchanged=False)
    try:
        info = await graph.debug_token(input_token=token, app_id=settings.meta_app_id, app_secret=secret)
    except GraphAPIError as error:
        log.warning("debug_token failed; the token's expiry stays unknown: %s", error)
        return LastingToken(token, None, exchanged=False)
    if not info.is_valid:
        raise ApiError(
            422,
            "instagram_token_rejected",
            f"Instagram says the access token is not valid: {info.error_message or 'no reason given'}",
            field="access_token",
        )
    if info.token_type == "USER" and info.expires_at is not None and info.expires_at - now < _SHORT_LIVED:
        try:
            grant = await graph.exchange_facebook_token(
                access_token=token, app_id=settings.meta_app_id, app_secret=secret
            )
        except GraphAPIError as error:
            log.warning("kept the short-lived token: the exchange failed: %s", error)
            return LastingToken(token, info.expires_at, exchanged=False)
        expires_at = now + grant.expires_in if grant.expires_in is not None else None
        return LastingToken(grant.access_token, expires_at, exchanged=True)
    return LastingToken(token, info.expires_at, exchanged=False)


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
    """The account with its publishing quota, read live (if that fails, with why instead; an authentication
    error marks the account needs_reconnect, as any Graph call would), and its latest events."""
    assert account.id is not None
    account_id = account.id
    started = datetime.now(UTC)
    quota: dict[str, Any] = {}
    try:
        limit = await services.graph.get_publishing_limit(
            ig_user_id=account.ig_user_id,
            access_token=account.access_token(services.cipher).get_secret_value(),
        )
        quota = {"publishing_quota": PublishingQuota.from_limit(limit)}
    except GraphAPIError as error:
        quota = {"publishing_quota": None, "publishing_quota_error": error.user_message}
        if isinstance(error, GraphAuthError):
            await run_in_threadpool(
                account_status.mark_needs_reconnect, services.engine, account_id, error, since=started
            )
    current = await account_or_none(services, account_id) or account
    events = await run_in_threadpool(
        _in_session, services, crud.recent_events, account_id=account_id, limit=_EVENTS_SHOWN
    )
    base = AccountOut.from_row(current, lead=services.settings.token_refresh_lead).model_dump()
    return AccountDetail(**base, **quota, events=[AccountEventOut.from_row(event) for event in events])


_EVENTS_SHOWN = 20


class Disconnection(Enum):
    DONE = "done"
    # Begun and durable: the account takes no post, and the reconciler finishes what is left.
    UNDER_WAY = "under_way"


async def disconnect_account(services: AppServices, account: InstagramAccount) -> Disconnection:
    """Disconnect the account: all of it, or nothing.

    Refused (409, nothing changed) while one of its posts is being published. Otherwise the account is marked
    disconnecting (no post is scheduled on it from then on), its scheduled posts are cancelled through their
    workflows, and once none is left running the account and its posts' records are deleted. If Temporal refuses
    every cancellation before any went through, the mark is undone and nothing has changed (503). Anything that
    cannot finish within the request (a post still ending, Temporal failing midway) is finished by the
    reconciler: the disconnection is under way and completes on its own."""
    assert account.id is not None
    account_id = account.id
    begun = await run_in_threadpool(
        _in_session, services, crud.begin_disconnect, account_id=account_id, now=datetime.now(UTC)
    )
    if begun.publishing_post_id is not None:
        raise ApiError(
            409,
            "account_busy",
            f"account {account_id}: post {begun.publishing_post_id} is being published; disconnect the account once "
            "that has finished",
        )
    progress = await finish_disconnection(services, account_id)
    if progress is Progress.NOTHING_DONE and not begun.resumed:
        await run_in_threadpool(_in_session, services, crud.abandon_disconnect, account_id=account_id)
        raise ApiError(503, "workflows_unavailable", "the scheduler is unavailable; try again shortly")
    return Disconnection.DONE if progress is Progress.DONE else Disconnection.UNDER_WAY


class Progress(Enum):
    """How far ``finish_disconnection`` got."""

    DONE = "done"
    UNDER_WAY = "under_way"
    # Temporal refused every cancellation: nothing was cancelled.
    NOTHING_DONE = "nothing_done"


async def account_or_none(services: AppServices, account_id: int) -> InstagramAccount | None:
    return await run_in_threadpool(_in_session, services, crud.account_by_id, account_id=account_id)


async def finish_disconnection(services: AppServices, account_id: int) -> Progress:
    """Cancel what is still scheduled on a disconnecting account, wait for its workflows to end, then delete it.
    Safe to repeat: the route calls it once, the reconciler until it is done."""
    active = await run_in_threadpool(
        _in_session,
        services,
        post_crud.posts_of_account,
        account_id=account_id,
        statuses=crud.ACTIVE_STATUSES,
    )
    scheduled = [post.id for post in active if post.status is PostStatus.SCHEDULED and post.id is not None]
    results = await asyncio.gather(
        *(_cancel(services, post_id) for post_id in scheduled), return_exceptions=True
    )
    failures: list[RPCError] = []
    for result in results:
        if isinstance(result, RPCError):
            failures.append(result)
        elif isinstance(result, BaseException):
            raise result
    if failures:
        log.warning("could not cancel %s posts of account %s: %s", len(failures), account_id, failures[0])
        refused_all = len(failures) == len(scheduled) and all(
            error.status is RPCStatusCode.UNAVAILABLE for error in failures
        )
        return Progress.NOTHING_DONE if refused_all else Progress.UNDER_WAY
    timeout = services.settings.api_workflow_wait_seconds
    closed = await asyncio.gather(
        *(temporal_gateway.wait_closed(services, post.id, timeout) for post in active if post.id is not None)
    )
    if not all(closed):
        return Progress.UNDER_WAY
    remaining = await run_in_threadpool(_in_session, services, crud.delete_account, account_id=account_id)
    if remaining:
        return Progress.UNDER_WAY
    await account_workflows.account_gone(services, account_id)
    return Progress.DONE


async def _cancel(services: AppServices, post_id: int) -> None:
    # A post whose workflow is missing (its start was lost) gets one first, so that the cancellation goes through
    # the workflow too: anything else would race the reconciler starting it.
    try:
        await temporal_gateway.signal_post(services, post_id, CancelRequest("account disconnected"))
    except (temporal_gateway.SignalNotDelivered, temporal_gateway.StartFailed):
        log.warning("could not cancel post %s", post_id, exc_info=True)


def _in_session(services: AppServices, operation: Callable[..., _T], **arguments: Any) -> _T:
    # A short session per step: the request holds no pooled connection while it waits on Temporal.
    with Session(services.engine, expire_on_commit=False) as session:
        return operation(session, **arguments)


def _account_refused(error: GraphAPIError) -> bool:
    # 100/33 ("object does not exist or cannot be loaded") is classed transient for reads of our own containers,
    # where Meta has returned it during incidents; here, on an id the user typed, it means the token has no
    # access to that account, which the user must fix.
    return isinstance(error, GraphInvalidRequestError) or (error.code == 100 and error.subcode == 33)
