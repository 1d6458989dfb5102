"""Marking an account ``needs_reconnect`` when Instagram says its token no longer works, from wherever that is
seen: a post's Graph activities (through ``marks_account_on_auth_error``) or the token refresh."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio.exceptions import ApplicationError

from chronogram import accounts
from chronogram.instagram import GraphAuthError
from chronogram.models import Post

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def auth_detail(error: GraphAuthError) -> str:
    """What the account's status shows: the missing permission when Meta names it, else Meta's message."""
    permission = error.missing_permission
    if permission is not None:
        return f"the {permission} permission was withdrawn"
    return error.message


def mark_needs_reconnect(
    engine: Engine, account_id: int, error: GraphAuthError, *, since: datetime, now: datetime | None = None
) -> bool:
    """``needs_reconnect`` for the account, unless its token was replaced after ``since`` (the failed call's
    start): a reconnect meanwhile wins."""
    with engine.begin() as connection:
        return accounts.mark_needs_reconnect(
            connection,
            account_id,
            reason=error.reason,
            detail=auth_detail(error),
            now=now or datetime.now(UTC),
            unchanged_since=since,
        )


def _mark_post_account(engine: Engine, post_id: int, error: GraphAuthError, since: datetime) -> None:
    with Session(engine) as session:
        account_id = session.exec(select(Post.account_id).where(Post.id == post_id)).first()
    if account_id is not None and mark_needs_reconnect(engine, account_id, error, since=since):
        log.warning("account %s needs reconnecting (%s), seen on post %s", account_id, error.reason, post_id)


def marks_account_on_auth_error(method: F) -> F:
    """For a post's Graph activities: an authentication or permission error marks the post's account
    ``needs_reconnect`` (with the reason) before the activity fails with it. The error is the ApplicationError's
    context, as the activities raise it ``from None`` while translating a GraphAuthError."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        started = datetime.now(UTC)
        try:
            return await method(self, request, *args, **kwargs)
        except ApplicationError as error:
            cause = error.__context__
            if isinstance(cause, GraphAuthError):
                await asyncio.to_thread(_mark_post_account, self._engine, request.post_id, cause, started)
            raise

    return cast(F, wrapper)
