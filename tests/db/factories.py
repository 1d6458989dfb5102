"""Minimal valid rows, unique per call, so tests can share one PostgreSQL database without colliding."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime

from sqlmodel import Session

from chronogram.crypto import TokenCipher
from chronogram.models import InstagramAccount, MediaAsset, Post, PostType, User

ACCESS_TOKEN = "IGAAtest-access-token-" + "x" * 40


def ig_id() -> str:
    """A Graph-style id: a string of 17 digits."""
    return str(secrets.randbelow(9 * 10**16) + 10**16)


def add_user(session: Session) -> User:
    user = User(email=f"{uuid.uuid4().hex}@example.com")
    session.add(user)
    session.flush()
    return user


def add_account(session: Session, owner: User, cipher: TokenCipher) -> InstagramAccount:
    assert owner.id is not None
    account = InstagramAccount(
        owner_id=owner.id,
        ig_user_id=ig_id(),
        username=f"chronogram_{uuid.uuid4().hex[:8]}",
        access_token_ciphertext=cipher.encrypt(ACCESS_TOKEN),
        token_expires_at=datetime(2027, 1, 30, 12, 0, tzinfo=UTC),
    )
    session.add(account)
    session.flush()
    return account


def add_image(session: Session, owner: User, name: str = "image") -> MediaAsset:
    assert owner.id is not None
    body = f"{name}-{uuid.uuid4()}".encode()
    media = MediaAsset(
        owner_id=owner.id,
        object_key=f"{owner.id}/{uuid.uuid4().hex}/{name}.jpg",
        content_type="image/jpeg",
        size_bytes=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        width=1080,
        height=1350,
    )
    session.add(media)
    session.flush()
    return media


def add_post(
    session: Session, account: InstagramAccount, publish_at: datetime, post_type: PostType = PostType.IMAGE
) -> Post:
    assert account.id is not None
    post = Post(owner_id=account.owner_id, account_id=account.id, type=post_type, publish_at=publish_at)
    session.add(post)
    session.flush()
    return post


def id_of(row: User | InstagramAccount | MediaAsset | Post) -> int:
    """The id of a flushed row (the models type it `int | None` because it is None until then)."""
    assert row.id is not None, f"{type(row).__name__} was not flushed"
    return row.id
