"""Rows for tests, one way to make each: minimal valid rows, unique per call so that tests can share one PostgreSQL
database without colliding, with keywords for what a test needs set. Each factory adds its row to the session and
flushes it (so it has its id) without committing.

Seeder makes the rows of a post the way the API would, with its media in object storage, for tests that run the
engine or its activities on them."""

from __future__ import annotations

import hashlib
import io
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from minio import Minio
from sqlalchemy import Engine
from sqlmodel import Session, select

from chronogram.crypto import TokenCipher
from chronogram.models import InstagramAccount, MediaAsset, Post, PostMedia, PostType, User
from tests.support.media import Upload

ACCESS_TOKEN = "IGAAtest-access-token-" + "x" * 40
TOKEN_EXPIRES_AT = datetime(2027, 1, 30, 12, 0, tzinfo=UTC)
SEEDED_USER = "engine-tests@example.com"


def ig_id() -> str:
    """A Graph-style id: a string of 17 digits."""
    return str(secrets.randbelow(9 * 10**16) + 10**16)


def id_of(row: User | InstagramAccount | MediaAsset | Post) -> int:
    """The id of a flushed row (the models type it `int | None` because it is None until then)."""
    assert row.id is not None, f"{type(row).__name__} was not flushed"
    return row.id


def add_user(session: Session, *, email: str | None = None) -> User:
    user = User(email=email if email is not None else f"{uuid.uuid4().hex}@example.com")
    session.add(user)
    session.flush()
    return user


def add_account(
    session: Session,
    owner: User,
    cipher: TokenCipher,
    *,
    ig_user_id: str | None = None,
    username: str | None = None,
    token: str = ACCESS_TOKEN,
    token_expires_at: datetime | None = TOKEN_EXPIRES_AT,
    token_issued_at: datetime | None = None,
) -> InstagramAccount:
    account = InstagramAccount(
        owner_id=id_of(owner),
        ig_user_id=ig_user_id if ig_user_id is not None else ig_id(),
        username=username if username is not None else f"chronogram_{uuid.uuid4().hex[:8]}",
        access_token_ciphertext=cipher.encrypt(token),
        token_expires_at=token_expires_at,
        token_issued_at=token_issued_at,
    )
    session.add(account)
    session.flush()
    return account


def add_media(session: Session, owner: User, upload: Upload, *, object_key: str | None = None) -> MediaAsset:
    """The row of an uploaded file: its size and hash from its bytes, what was measured of it from the upload.

    The default key is where the API stores uploads; the file itself is not stored (Seeder stores it)."""
    if object_key is None:
        extension = "jpg" if upload.content_type == "image/jpeg" else "mp4"
        object_key = f"uploads/{id_of(owner)}/{uuid.uuid4()}.{extension}"
    media = MediaAsset(
        owner_id=id_of(owner),
        object_key=object_key,
        content_type=upload.content_type,
        size_bytes=len(upload.data),
        sha256=hashlib.sha256(upload.data).hexdigest(),
        width=upload.width,
        height=upload.height,
        duration_ms=upload.duration_ms,
    )
    session.add(media)
    session.flush()
    return media


def add_image(session: Session, owner: User, name: str = "image") -> MediaAsset:
    """A 1080x1350 JPEG's row, for tests that never read the file: its bytes are a unique stand-in."""
    return add_media(
        session,
        owner,
        Upload(f"{name}-{uuid.uuid4()}".encode(), "image/jpeg", width=1080, height=1350),
        object_key=f"{id_of(owner)}/{uuid.uuid4().hex}/{name}.jpg",
    )


def add_post(
    session: Session,
    account: InstagramAccount,
    publish_at: datetime,
    post_type: PostType = PostType.IMAGE,
    *,
    media: Sequence[MediaAsset] = (),
    caption: str | None = None,
    first_comment: str | None = None,
    location_id: str | None = None,
    user_tags: list[dict[str, Any]] | None = None,
    alt_text: str | None = None,
    reel_options: dict[str, Any] | None = None,
) -> Post:
    """A post of the account's owner, with ``media`` as its items in that order."""
    post = Post(
        owner_id=account.owner_id,
        account_id=id_of(account),
        type=post_type,
        caption=caption,
        first_comment=first_comment,
        location_id=location_id,
        user_tags=user_tags if user_tags is not None else [],  # type: ignore[arg-type]
        alt_text=alt_text,
        reel_options=reel_options,  # type: ignore[arg-type]
        publish_at=publish_at,
    )
    session.add(post)
    session.flush()
    for position, asset in enumerate(media):
        session.add(PostMedia(post_id=id_of(post), position=position, media_id=id_of(asset)))
    if media:
        session.flush()
    return post


@dataclass
class PostSeed:
    post_type: PostType
    media: list[Upload]
    publish_at: datetime
    caption: str | None = "A post from Chronogram's engine tests #chronogram"
    first_comment: str | None = "First! #comment"
    location_id: str | None = None
    user_tags: list[dict[str, Any]] = field(default_factory=list)
    alt_text: str | None = None
    reel_options: dict[str, Any] | None = None


@dataclass
class Seeder:
    """Commits the rows of accounts and posts, all of one user (SEEDED_USER), and puts each post's media into the
    bucket."""

    engine: Engine
    storage: Minio
    bucket: str
    cipher: TokenCipher

    def account(self, *, ig_user_id: str, username: str, token: str) -> int:
        with Session(self.engine) as session:
            owner = session.exec(select(User).where(User.email == SEEDED_USER)).first()
            if owner is None:
                owner = add_user(session, email=SEEDED_USER)
            account = add_account(
                session,
                owner,
                self.cipher,
                ig_user_id=ig_user_id,
                username=username,
                token=token,
                token_expires_at=None,
            )
            session.commit()
            return id_of(account)

    def post(self, account_id: int, seed: PostSeed) -> int:
        with Session(self.engine) as session:
            account = session.get_one(InstagramAccount, account_id)
            owner = session.get_one(User, account.owner_id)
            post = add_post(
                session,
                account,
                seed.publish_at,
                seed.post_type,
                media=[self._store(session, owner, upload) for upload in seed.media],
                caption=seed.caption,
                first_comment=seed.first_comment,
                location_id=seed.location_id,
                user_tags=seed.user_tags,
                alt_text=seed.alt_text,
                reel_options=seed.reel_options,
            )
            session.commit()
            return id_of(post)

    def move(self, post_ids: list[int], publish_at: datetime) -> None:
        """Set the publish time of posts seeded but not started yet: a burst seeded slowly still gets its whole
        lead once its workflows start."""
        with Session(self.engine) as session:
            for post_id in post_ids:
                session.get_one(Post, post_id).publish_at = publish_at
            session.commit()

    def _store(self, session: Session, owner: User, upload: Upload) -> MediaAsset:
        media = add_media(session, owner, upload)
        self.storage.put_object(
            self.bucket,
            media.object_key,
            io.BytesIO(upload.data),
            len(upload.data),
            content_type=upload.content_type,
        )
        return media
