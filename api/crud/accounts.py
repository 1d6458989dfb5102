"""Connected Instagram accounts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.crud.deletion import delete_unless_pinned
from chronogram import accounts as account_status
from chronogram.enums import AccountEventKind, AccountStatus, PostStatus
from chronogram.models import AccountEvent, InstagramAccount, Post

ACTIVE_STATUSES = (PostStatus.SCHEDULED, PostStatus.PUBLISHING)


class AccountDisconnecting(Exception):
    """The account is being disconnected: it takes no new post, and cannot be connected again until it is gone."""

    def __init__(self, account_id: int) -> None:
        super().__init__(account_id)
        self.account_id = account_id


def list_accounts(session: Session, *, owner_id: int) -> list[InstagramAccount]:
    return list(
        session.exec(
            select(InstagramAccount)
            .where(InstagramAccount.owner_id == owner_id)
            .order_by(col(InstagramAccount.id))
        ).all()
    )


def account_by_id(session: Session, *, account_id: int) -> InstagramAccount | None:
    return session.get(InstagramAccount, account_id)


@dataclass(frozen=True)
class ConnectedToken:
    """The token a connect stores (encrypted), with what is known of its life and how it was obtained."""

    ciphertext: str
    expires_at: datetime | None
    # Whether Chronogram exchanged the token the user gave for a long-lived one.
    exchanged: bool = False


@dataclass(frozen=True)
class Connected:
    account: InstagramAccount
    created: bool
    # The account needed reconnecting before this connect: its waiting posts are to be told.
    was_needing_reconnect: bool = False


def connect_account(
    session: Session,
    *,
    owner_id: int,
    ig_user_id: str,
    username: str,
    token: ConnectedToken,
    max_lateness_seconds: int | None = None,
    lateness_sent: bool = False,
) -> Connected:
    """Insert the account, or replace the token and username of the one already connected (a reconnect: the
    account becomes active again); either way one account event (and one more for an exchange). A max lateness
    sent with it is stored (``lateness_sent``: also when it is null, which clears it)."""
    now = datetime.now(UTC)
    for _attempt in range(2):
        account = session.exec(
            select(InstagramAccount).where(
                InstagramAccount.owner_id == owner_id, InstagramAccount.ig_user_id == ig_user_id
            )
        ).first()
        created = account is None
        was_needing_reconnect = False
        if account is None:
            account = InstagramAccount(
                owner_id=owner_id,
                ig_user_id=ig_user_id,
                username=username,
                access_token_ciphertext=token.ciphertext,
                token_expires_at=token.expires_at,
                token_issued_at=now,
                status_changed_at=now,
                max_lateness_seconds=max_lateness_seconds,
            )
        elif account.disconnecting_since is not None:
            assert account.id is not None
            session.rollback()
            raise AccountDisconnecting(account.id)
        else:
            was_needing_reconnect = account.status is AccountStatus.NEEDS_RECONNECT
            if lateness_sent:
                account.max_lateness_seconds = max_lateness_seconds
            account.username = username
        session.add(account)
        try:
            session.flush()
            assert account.id is not None
            connection = session.connection()
            until = f"; the token expires at {token.expires_at.isoformat()}" if token.expires_at else ""
            if created:
                account_status.record_event(
                    connection,
                    account.id,
                    kind=AccountEventKind.CONNECTED,
                    message=f"connected as @{username}{until}",
                    now=now,
                    token_expires_at=token.expires_at,
                )
            else:
                was = "after it needed reconnecting" if was_needing_reconnect else "with a new token"
                account_status.replace_token(
                    connection,
                    account.id,
                    token_ciphertext=token.ciphertext,
                    expires_at=token.expires_at,
                    now=now,
                    kind=AccountEventKind.RECONNECTED,
                    message=f"reconnected as @{username} {was}{until}",
                )
            if token.exchanged:
                account_status.record_event(
                    connection,
                    account.id,
                    kind=AccountEventKind.TOKEN_EXCHANGED,
                    message=f"the short-lived token was exchanged for a long-lived one{until}",
                    now=now,
                    token_expires_at=token.expires_at,
                )
            session.commit()
        except IntegrityError:
            # The same account was connected by a concurrent request: update that row instead.
            session.rollback()
            continue
        session.refresh(account)
        return Connected(account, created, was_needing_reconnect)
    raise RuntimeError(f"could not connect account {ig_user_id}")


def recent_events(session: Session, *, account_id: int, limit: int) -> list[AccountEvent]:
    """The account's latest events, oldest first."""
    rows = session.exec(
        select(AccountEvent)
        .where(AccountEvent.account_id == account_id)
        .order_by(col(AccountEvent.occurred_at).desc(), col(AccountEvent.id).desc())
        .limit(limit)
    ).all()
    return list(reversed(rows))


@dataclass(frozen=True)
class DisconnectBegun:
    # Set when refused: nothing changed, as this post of the account is being published.
    publishing_post_id: int | None
    # The account was already disconnecting (an earlier request began it).
    resumed: bool = False


def begin_disconnect(session: Session, *, account_id: int, now: datetime) -> DisconnectBegun:
    """Mark the account as disconnecting, so that no post is scheduled on it any more, unless one of its posts is
    being published: then nothing changes, and the answer names that post.

    The account row is locked first (PostgreSQL): a post being recorded on the account holds a key-share lock on
    it (``is_disconnecting``), so the mark waits for that post to commit and the caller then sees the post; a post
    recorded after the mark sees the mark. On SQLite, writers take turns anyway."""
    since = session.exec(
        select(InstagramAccount.disconnecting_since)
        .where(InstagramAccount.id == account_id)
        .with_for_update()
    ).first()
    if since is not None:
        session.commit()
        return DisconnectBegun(publishing_post_id=None, resumed=True)
    publishing = session.exec(
        select(Post.id).where(Post.account_id == account_id, Post.status == PostStatus.PUBLISHING).limit(1)
    ).first()
    if publishing is not None:
        session.rollback()
        return DisconnectBegun(publishing_post_id=publishing)
    session.execute(
        update(InstagramAccount).where(col(InstagramAccount.id) == account_id).values(disconnecting_since=now)
    )
    session.commit()
    return DisconnectBegun(publishing_post_id=None)


def abandon_disconnect(session: Session, *, account_id: int) -> None:
    """Undo ``begin_disconnect`` when nothing else was done: the account takes posts again."""
    session.execute(
        update(InstagramAccount)
        .where(col(InstagramAccount.id) == account_id)
        .values(disconnecting_since=None)
    )
    session.commit()


def is_disconnecting(session: Session, *, account_id: int) -> bool:
    """Whether the account's disconnection has begun. Holds the account against one beginning (PostgreSQL: a
    key-share lock, which ``begin_disconnect``'s lock waits for) until the transaction ends."""
    since = session.exec(
        select(InstagramAccount.disconnecting_since)
        .where(InstagramAccount.id == account_id)
        .with_for_update(read=True, key_share=True)
    ).first()
    return since is not None


def disconnecting_accounts(session: Session, *, limit: int) -> list[int]:
    """Accounts whose disconnection has begun and not finished, oldest first."""
    rows = session.exec(
        select(InstagramAccount.id)
        .where(col(InstagramAccount.disconnecting_since).is_not(None))
        .order_by(col(InstagramAccount.disconnecting_since))
        .limit(limit)
    ).all()
    session.commit()
    return [row for row in rows if row is not None]


def update_settings(
    session: Session, *, account_id: int, max_lateness_seconds: int | None
) -> InstagramAccount:
    account = session.get(InstagramAccount, account_id)
    assert account is not None, "the route resolved the account"
    account.max_lateness_seconds = max_lateness_seconds
    account.updated_at = datetime.now(UTC)
    session.add(account)
    session.commit()
    session.refresh(account)
    return account


def delete_account(session: Session, *, account_id: int) -> list[Post]:
    """Delete the account and the records of its posts, unless a post may still publish: then nothing is
    deleted and those posts are returned. (Posts reference their account, so the account cannot go alone.)"""

    def active() -> list[Post]:
        return list(
            session.exec(
                select(Post).where(Post.account_id == account_id, col(Post.status).in_(ACTIVE_STATUSES))
            ).all()
        )

    # post_media, post_events and idempotency_keys rows go with their posts (ON DELETE CASCADE). Only finished
    # posts are deleted: one created meanwhile keeps the account, as the foreign key then refuses the delete.
    return delete_unless_pinned(
        session,
        active,
        [
            delete(Post).where(col(Post.account_id) == account_id, col(Post.status).not_in(ACTIVE_STATUSES)),
            delete(InstagramAccount).where(col(InstagramAccount.id) == account_id),
        ],
    )
