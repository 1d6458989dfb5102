"""Connected Instagram accounts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.crud.deletion import delete_unless_pinned
from chronogram.enums import PostStatus
from chronogram.models import InstagramAccount, Post

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


def connect_account(
    session: Session, *, owner_id: int, ig_user_id: str, username: str, token_ciphertext: str
) -> tuple[InstagramAccount, bool]:
    """Insert the account, or refresh the token and username of the one already connected; True if inserted."""
    for _attempt in range(2):
        account = session.exec(
            select(InstagramAccount).where(
                InstagramAccount.owner_id == owner_id, InstagramAccount.ig_user_id == ig_user_id
            )
        ).first()
        created = account is None
        if account is None:
            account = InstagramAccount(
                owner_id=owner_id,
                ig_user_id=ig_user_id,
                username=username,
                access_token_ciphertext=token_ciphertext,
            )
        elif account.disconnecting_since is not None:
            assert account.id is not None
            session.rollback()
            raise AccountDisconnecting(account.id)
        else:
            account.username = username
            account.access_token_ciphertext = token_ciphertext
            account.updated_at = datetime.now(UTC)
        session.add(account)
        try:
            session.commit()
        except IntegrityError:
            # The same account was connected by a concurrent request: update that row instead.
            session.rollback()
            continue
        return account, created
    raise RuntimeError(f"could not connect account {ig_user_id}")


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
