"""Put a post into the database and its media into object storage, as the API would, for engine tests."""

from __future__ import annotations

import hashlib
import io
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from minio import Minio
from PIL import Image
from sqlalchemy import Engine
from sqlmodel import Session, select

from chronogram.crypto import TokenCipher
from chronogram.enums import PostType
from chronogram.models import InstagramAccount, MediaAsset, Post, PostMedia, User


@dataclass(frozen=True)
class Upload:
    data: bytes
    content_type: str
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None


def jpeg(width: int, height: int, color: tuple[int, int, int] = (30, 120, 200)) -> Upload:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="JPEG", quality=85)
    return Upload(out.getvalue(), "image/jpeg", width, height)


def mp4(duration_ms: int = 8000) -> Upload:
    # An ISO base media file with an ftyp box: what both our sniffing and the sandbox's accept as MP4.
    def box(kind: bytes, body: bytes) -> bytes:
        return (8 + len(body)).to_bytes(4, "big") + kind + body

    data = (
        box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41")
        + box(b"moov", b"\x00" * 64)
        + box(b"mdat", b"\x00" * 4096)
    )
    return Upload(data, "video/mp4", duration_ms=duration_ms)


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
    engine: Engine
    storage: Minio
    bucket: str
    cipher: TokenCipher

    def account(self, *, ig_user_id: str, username: str, token: str) -> int:
        with Session(self.engine) as session:
            user = session.exec(select(User).where(User.email == "engine-tests@example.com")).first()
            if user is None:
                user = User(email="engine-tests@example.com")
                session.add(user)
                session.flush()
            account = InstagramAccount(
                owner_id=user.id,  # type: ignore[arg-type]
                ig_user_id=ig_user_id,
                username=username,
                access_token_ciphertext=self.cipher.encrypt(token),
            )
            session.add(account)
            session.commit()
            assert account.id is not None
            return account.id

    def post(self, account_id: int, seed: PostSeed) -> int:
        with Session(self.engine) as session:
            account = session.get(InstagramAccount, account_id)
            assert account is not None
            assets = [self._upload(session, account.owner_id, upload) for upload in seed.media]
            post = Post(
                owner_id=account.owner_id,
                account_id=account_id,
                type=seed.post_type,
                caption=seed.caption,
                first_comment=seed.first_comment,
                location_id=seed.location_id,
                user_tags=seed.user_tags,  # type: ignore[arg-type]
                alt_text=seed.alt_text,
                reel_options=seed.reel_options,  # type: ignore[arg-type]
                publish_at=seed.publish_at,
            )
            session.add(post)
            session.flush()
            assert post.id is not None
            for position, asset in enumerate(assets):
                session.add(PostMedia(post_id=post.id, position=position, media_id=asset.id))  # type: ignore[arg-type]
            session.commit()
            return post.id

    def _upload(self, session: Session, owner_id: int, upload: Upload) -> MediaAsset:
        extension = "jpg" if upload.content_type == "image/jpeg" else "mp4"
        key = f"uploads/{owner_id}/{uuid.uuid4()}.{extension}"
        self.storage.put_object(
            self.bucket, key, io.BytesIO(upload.data), len(upload.data), content_type=upload.content_type
        )
        asset = MediaAsset(
            owner_id=owner_id,
            object_key=key,
            content_type=upload.content_type,
            size_bytes=len(upload.data),
            sha256=hashlib.sha256(upload.data).hexdigest(),
            width=upload.width,
            height=upload.height,
            duration_ms=upload.duration_ms,
        )
        session.add(asset)
        session.flush()
        return asset
