"""Connected Instagram accounts."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.crud.deletion import delete_unless_pinned
from chronogram.enums import PostStatus
from chronogram.models import InstagramAccount, Post

ACTIVE_STATUSES = (PostStatus.SCHEDULED, PostStatus.PUBLISHING)


def list_accounts(session: Session, *, owner_id: int) -> list[InstagramAccount]:
    return list(
        session.exec(
            select(InstagramAccount)
            .where(InstagramAccount.owner_id == owner_id)
            .order_by(col(InstagramAccount.id))
        ).all()
    )


def connect_account(
    session: Session,
    *,
    owner_id: int,
    ig_user_id: str,
    username: str,
    token_ciphertext: str,
    max_lateness_seconds: int | None = None,
    lateness_sent: bool = False,
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
                max_lateness_seconds=max_lateness_seconds,
            )
        else:
            if lateness_sent:
                account.max_lateness_seconds = max_lateness_seconds
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
