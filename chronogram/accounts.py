"""The one owner of an account's connection status and token record: every change of status or token goes through
here and writes one account event (account_events), so that the history says what happened and when.

Whatever must hear of every account event (the notifications' outbox) subscribes with ``observe``, and is told in
the event's transaction.

Stored: ``active`` or ``needs_reconnect`` (with a reason). Derived: ``expiring``, an active account whose token
is due for a refresh that has not succeeded yet (or cannot be done, with Facebook Login). Tokens are written
encrypted and never enter an event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from chronogram.enums import AccountEventKind, AccountStatus, AccountStatusReason
from chronogram.models import AccountEvent, InstagramAccount, table_of

__all__ = [
    "AccountChange",
    "StatusView",
    "TokenSchedule",
    "mark_needs_reconnect",
    "observe",
    "record_event",
    "refresh_due_at",
    "replace_token",
    "status_of",
]

_ACCOUNTS = table_of(InstagramAccount)
_EVENTS = table_of(AccountEvent)
# Status details come from Meta's messages: kept short.
_MAX_DETAIL = 300


@dataclass(frozen=True)
class TokenSchedule:
    """When an account's token should be refreshed: ``lead`` before it expires, never before it is ``min_age``
    old (Meta: 24 h)."""

    lead: timedelta
    min_age: timedelta


@dataclass(frozen=True)
class StatusView:
    status: AccountStatus
    reason: AccountStatusReason | None
    detail: str | None


@dataclass(frozen=True)
class AccountChange:
    """What an observer hears: one recorded account event, inside the transaction that wrote it."""

    account_id: int
    kind: AccountEventKind
    occurred_at: datetime
    message: str
    reason: AccountStatusReason | None
    token_expires_at: datetime | None


AccountObserver = Callable[[Connection, AccountChange], None]
_observers: list[AccountObserver] = []


def observe(observer: AccountObserver) -> Callable[[], None]:
    """Call ``observer`` for every account event recorded from now on (once: not for a retry's), in its
    transaction. Returns the function that unsubscribes it."""
    _observers.append(observer)
    return lambda: _observers.remove(observer)


def refresh_due_at(
    *, expires_at: datetime | None, issued_at: datetime | None, schedule: TokenSchedule
) -> datetime | None:
    """When to refresh a refreshable (Instagram Login) token; None if there is nothing to go by."""
    earliest = issued_at + schedule.min_age if issued_at is not None else None
    if expires_at is None:
        # Expiry unknown (stored without an exchange): the first refresh, once allowed, tells it.
        return earliest
    due = expires_at - schedule.lead
    return max(due, earliest) if earliest is not None else due


def status_of(account: InstagramAccount, *, now: datetime, lead: timedelta) -> StatusView:
    if account.status is AccountStatus.NEEDS_RECONNECT:
        return StatusView(AccountStatus.NEEDS_RECONNECT, account.status_reason, account.status_detail)
    expires_at = account.token_expires_at
    if expires_at is not None and expires_at <= now:
        # Not yet seen by a Graph call or a refresh, but past its time all the same.
        return StatusView(
            AccountStatus.NEEDS_RECONNECT,
            AccountStatusReason.TOKEN_EXPIRED,
            f"the access token expired at {expires_at.isoformat()}",
        )
    if expires_at is not None and expires_at <= now + lead:
        return StatusView(
            AccountStatus.EXPIRING,
            AccountStatusReason.EXPIRY_NEAR,
            f"the access token expires at {expires_at.isoformat()} and has not been refreshed yet",
        )
    return StatusView(AccountStatus.ACTIVE, None, None)


def record_event(
    connection: Connection,
    account_id: int,
    *,
    kind: AccountEventKind,
    message: str,
    now: datetime,
    reason: AccountStatusReason | None = None,
    token_expires_at: datetime | None = None,
    dedupe_key: str | None = None,
) -> bool:
    """Append one event; False if ``dedupe_key`` was recorded already (a retried activity)."""
    values = {
        "account_id": account_id,
        "occurred_at": now,
        "kind": kind,
        "message": message,
        "reason": reason,
        "token_expires_at": token_expires_at,
        "dedupe_key": dedupe_key,
    }
    if dedupe_key is not None:
        if connection.execute(select(_EVENTS.c.id).where(_EVENTS.c.dedupe_key == dedupe_key)).first():
            return False
        savepoint = connection.begin_nested()
        try:
            connection.execute(insert(_EVENTS).values(**values))
        except IntegrityError:
            savepoint.rollback()
            return False
        savepoint.commit()
    else:
        connection.execute(insert(_EVENTS).values(**values))
    change = AccountChange(account_id, kind, now, message, reason, token_expires_at)
    for observer in tuple(_observers):
        observer(connection, change)
    return True


def mark_needs_reconnect(
    connection: Connection,
    account_id: int,
    *,
    reason: AccountStatusReason,
    detail: str,
    now: datetime,
    unchanged_since: datetime | None = None,
    dedupe_key: str | None = None,
) -> bool:
    """The account's token no longer works: ``needs_reconnect`` with why, and one event. Only an active account
    changes (True); with ``unchanged_since`` (when the failed call began), only if the account was not changed
    since, so that the failure of a token a reconnect has just replaced marks nothing."""
    detail = detail if len(detail) <= _MAX_DETAIL else detail[: _MAX_DETAIL - 1] + "…"
    statement = (
        update(_ACCOUNTS)
        .where(_ACCOUNTS.c.id == account_id, _ACCOUNTS.c.status == AccountStatus.ACTIVE.value)
        .values(
            status=AccountStatus.NEEDS_RECONNECT,
            status_reason=reason,
            status_detail=detail,
            status_changed_at=now,
            updated_at=now,
        )
    )
    if unchanged_since is not None:
        statement = statement.where(_ACCOUNTS.c.updated_at <= unchanged_since)
    if connection.execute(statement).rowcount != 1:
        return False
    record_event(
        connection,
        account_id,
        kind=AccountEventKind.NEEDS_RECONNECT,
        message=f"needs reconnecting ({reason.value}): {detail}",
        now=now,
        reason=reason,
        dedupe_key=dedupe_key,
    )
    return True


def replace_token(
    connection: Connection,
    account_id: int,
    *,
    token_ciphertext: str,
    expires_at: datetime | None,
    now: datetime,
    kind: AccountEventKind,
    message: str,
    expected_ciphertext: str | None = None,
    dedupe_key: str | None = None,
) -> bool:
    """Store a new token (connect, exchange, refresh): the account becomes active, and one event says so. With
    ``expected_ciphertext`` (a refresh), only if the account still has that token: a reconnect meanwhile wins.
    False if nothing was written."""
    statement = (
        update(_ACCOUNTS)
        .where(_ACCOUNTS.c.id == account_id)
        .values(
            access_token_ciphertext=token_ciphertext,
            token_expires_at=expires_at,
            token_issued_at=now,
            status=AccountStatus.ACTIVE,
            status_reason=None,
            status_detail=None,
            status_changed_at=now,
            updated_at=now,
        )
    )
    if expected_ciphertext is not None:
        statement = statement.where(_ACCOUNTS.c.access_token_ciphertext == expected_ciphertext)
    if connection.execute(statement).rowcount != 1:
        return False
    record_event(
        connection,
        account_id,
        kind=kind,
        message=message,
        now=now,
        token_expires_at=expires_at,
        dedupe_key=dedupe_key,
    )
    return True
