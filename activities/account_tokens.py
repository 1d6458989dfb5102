"""An account's token over time: when to refresh it, the refresh itself, and marking the account
``needs_reconnect`` when Instagram says its token no longer works (on a refresh, or on any post's Graph call).

The token is read, decrypted, refreshed and written back here by account id: it never enters a workflow's input,
result or history, nor a log line or an event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlmodel import Session
from temporalio import activity

from activities.account_status import mark_needs_reconnect
from activities.instagram import as_application_error
from chronogram import accounts
from chronogram.accounts import TokenSchedule
from chronogram.contracts import (
    AccountRef,
    AccountTokensInterface,
    RefreshOutcome,
    RefreshPlan,
    RefreshResult,
)
from chronogram.crypto import TokenCipher
from chronogram.enums import AccountEventKind, AccountStatus
from chronogram.instagram import GraphAPIError, GraphAuthError, GraphClient
from chronogram.models import InstagramAccount
from chronogram.settings import GraphLogin


class AccountTokens(AccountTokensInterface):
    """``plan_token_refresh`` is blocking (SQLAlchemy, the worker's thread pool); ``refresh_token`` is async."""

    def __init__(
        self,
        graph: GraphClient,
        engine: Engine,
        cipher: TokenCipher,
        *,
        login: GraphLogin,
        schedule: TokenSchedule,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._clock = clock
        self._graph = graph
        self._engine = engine
        self._cipher = cipher
        self._login = login
        self._schedule = schedule

    @activity.defn
    def plan_token_refresh(self, request: AccountRef) -> RefreshPlan:
        account = self._load(request.account_id)
        if account is None or account.disconnecting_since is not None:
            return RefreshPlan(gone=True)
        if account.status is AccountStatus.NEEDS_RECONNECT or self._login is GraphLogin.FACEBOOK:
            return RefreshPlan(gone=False)
        return RefreshPlan(
            gone=False,
            refresh_at=accounts.refresh_due_at(
                expires_at=account.token_expires_at,
                issued_at=self._issued_at(account),
                schedule=self._schedule,
            ),
        )

    @activity.defn
    async def refresh_token(self, request: AccountRef) -> RefreshResult:
        """Instagram Login's refresh_access_token, its new token stored encrypted with its expiry and one event.
        Outages, throttles and refusals raise (the workflow retries without end); an authentication or permission
        error marks the account needs_reconnect."""
        account = await asyncio.to_thread(self._load, request.account_id)
        if account is None or account.disconnecting_since is not None:
            return RefreshResult(RefreshOutcome.GONE)
        if account.status is AccountStatus.NEEDS_RECONNECT:
            return RefreshResult(RefreshOutcome.NEEDS_RECONNECT)
        now = self._clock()
        if self._login is GraphLogin.FACEBOOK or now < self._issued_at(account) + self._schedule.min_age:
            return RefreshResult(RefreshOutcome.NOT_DUE, account.token_expires_at)
        ciphertext = account.access_token_ciphertext
        token = self._cipher.decrypt(ciphertext).get_secret_value()
        try:
            grant = await self._graph.refresh_access_token(access_token=token)
        except GraphAuthError as error:
            await asyncio.to_thread(
                mark_needs_reconnect, self._engine, request.account_id, error, since=now, now=now
            )
            return RefreshResult(RefreshOutcome.NEEDS_RECONNECT)
        except GraphAPIError as error:
            # Outages and throttles, and any other refusal (e.g. a token younger than Meta's clock allows): retried,
            # backing off to an hour. The token still works meanwhile; as its expiry nears the account shows
            # ``expiring``, and once it is past, ``needs_reconnect``.
            raise as_application_error(error, retryable=True) from None
        expires_at = now + grant.expires_in if grant.expires_in is not None else None
        written = await asyncio.to_thread(
            self._store, request.account_id, grant.access_token, expires_at, ciphertext, now
        )
        if not written:
            return RefreshResult(RefreshOutcome.NOT_DUE)
        return RefreshResult(RefreshOutcome.REFRESHED, expires_at)

    # --- helpers -----------------------------------------------------------------------------------------------

    def _load(self, account_id: int) -> InstagramAccount | None:
        with Session(self._engine, expire_on_commit=False) as session:
            account = session.get(InstagramAccount, account_id)
            if account is not None:
                session.expunge(account)
            return account

    @staticmethod
    def _issued_at(account: InstagramAccount) -> datetime:
        # Accounts connected before issuance was recorded: their last change is no earlier than the token.
        return account.token_issued_at or account.updated_at

    def _store(
        self, account_id: int, token: str, expires_at: datetime | None, old_ciphertext: str, now: datetime
    ) -> bool:
        until = f"; it expires at {expires_at.isoformat()}" if expires_at is not None else ""
        with self._engine.begin() as connection:
            return accounts.replace_token(
                connection,
                account_id,
                token_ciphertext=self._cipher.encrypt(token),
                expires_at=expires_at,
                now=now,
                kind=AccountEventKind.TOKEN_REFRESHED,
                message=f"access token refreshed{until}",
                expected_ciphertext=old_ciphertext,
                dedupe_key=f"{activity.info().workflow_run_id}:refresh",
            )
