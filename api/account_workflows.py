"""The accounts' workflows as the API drives them: each account's token workflow (started, or told of a new token,
on every connect; cancelled when the account is deleted), and the word to an account's waiting posts that it was
reconnected.

A failure to reach Temporal here never fails the request: the token is stored either way, the reconciler starts
every account's token workflow at start-up, and a post's workflow checks its account again when it wakes.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from temporalio.service import RPCError, RPCStatusCode

from api.deps import AppServices
from chronogram import scheduling
from chronogram.contracts import (
    AccountReconnected,
    AccountSignal,
    account_tokens_workflow_id,
    post_workflow_id,
)
from chronogram.enums import PostStatus
from chronogram.models import InstagramAccount, Post

log = logging.getLogger("chronogram.api.accounts")

_BATCH = 500


async def token_replaced(services: AppServices, account_id: int, username: str) -> bool:
    """Start the account's token workflow, or wake the running one to plan with its new token."""
    try:
        await scheduling.start_account_tokens_workflow(
            services.temporal, account_id=account_id, username=username
        )
    except RPCError as error:
        log.warning("could not start the token workflow of account %s: %s", account_id, error)
        return False
    return True


async def account_gone(services: AppServices, account_id: int) -> None:
    """End the deleted account's token workflow (it would find the account gone at its next wake-up anyway)."""
    handle = services.temporal.get_workflow_handle(account_tokens_workflow_id(account_id))
    try:
        await handle.cancel()
    except RPCError as error:
        if error.status is not RPCStatusCode.NOT_FOUND:
            log.warning("could not cancel the token workflow of account %s: %s", account_id, error)


async def resume_waiting_posts(services: AppServices, account_id: int, reconnected_at: datetime) -> int:
    """Tell each scheduled or publishing post of a reconnected account: one waiting for the reconnect goes on at
    once. Returns how many were told."""
    post_ids = await run_in_threadpool(_open_posts, services, account_id)
    signal = AccountReconnected(account_id=account_id, reconnected_at=reconnected_at)

    async def tell(post_id: int) -> bool:
        handle = services.temporal.get_workflow_handle(post_workflow_id(post_id))
        try:
            await handle.signal(AccountSignal.ACCOUNT_RECONNECTED, signal)
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                log.warning("could not tell post %s that its account was reconnected: %s", post_id, error)
            return False
        return True

    told = await asyncio.gather(*(tell(post_id) for post_id in post_ids))
    return sum(told)


async def ensure_token_workflows(services: AppServices) -> int:
    """Start the token workflow of every connected account that has none (accounts connected before the workflow
    existed, or while Temporal was down). Run by the reconciler at start-up."""
    started, after = 0, 0
    while True:
        batch = await run_in_threadpool(_accounts_after, services, after)
        if not batch:
            return started
        for account_id, username in batch:
            if not await token_replaced(services, account_id, username):
                return started
            started += 1
        after = batch[-1][0]


def _open_posts(services: AppServices, account_id: int) -> list[int]:
    # Publishing ones too: an authentication error can meet a post at its publish call.
    with Session(services.engine) as session:
        rows = session.exec(
            select(Post.id).where(
                Post.account_id == account_id,
                col(Post.status).in_((PostStatus.SCHEDULED, PostStatus.PUBLISHING)),
            )
        ).all()
        return [row for row in rows if row is not None]


def _accounts_after(services: AppServices, after: int) -> list[tuple[int, str]]:
    with Session(services.engine) as session:
        rows = session.exec(
            select(InstagramAccount.id, InstagramAccount.username)
            .where(col(InstagramAccount.id) > after, col(InstagramAccount.disconnecting_since).is_(None))
            .order_by(col(InstagramAccount.id))
            .limit(_BATCH)
        ).all()
        return [(account_id, username) for account_id, username in rows if account_id is not None]
