"""Uploaded media assets (their bytes are in object storage; these rows say what was measured on arrival)."""

from __future__ import annotations

from sqlalchemy import delete
from sqlmodel import Session, col, select

from api.crud.deletion import delete_unless_pinned
from chronogram.enums import PostStatus
from chronogram.models import MediaAsset, Post, PostMedia

# A post in one of these may still be published (a failed one by a retry), so its media must stay.
MEDIA_PINNING_STATUSES = (PostStatus.DRAFT, PostStatus.SCHEDULED, PostStatus.PUBLISHING, PostStatus.FAILED)


def list_media(
    session: Session, *, owner_id: int, limit: int, before_id: int | None = None
) -> list[MediaAsset]:
    """Newest first; ``before_id`` is the keyset cursor."""
    query = select(MediaAsset).where(MediaAsset.owner_id == owner_id)
    if before_id is not None:
        query = query.where(col(MediaAsset.id) < before_id)
    return list(session.exec(query.order_by(col(MediaAsset.id).desc()).limit(limit)).all())


def add_media(
    session: Session,
    *,
    owner_id: int,
    object_key: str,
    content_type: str,
    size_bytes: int,
    sha256: str,
    width: int | None,
    height: int | None,
    duration_ms: int | None = None,
    rotation: int | None = None,
    video_codec: str | None = None,
    audio_codec: str | None = None,
    frame_rate: float | None = None,
    has_audio: bool | None = None,
    preview_key: str | None = None,
) -> MediaAsset:
    asset = MediaAsset(
        owner_id=owner_id,
        object_key=object_key,
        content_type=content_type,
        size_bytes=size_bytes,
        sha256=sha256,
        width=width,
        height=height,
        duration_ms=duration_ms,
        rotation=rotation,
        video_codec=video_codec,
        audio_codec=audio_codec,
        frame_rate=frame_rate,
        has_audio=has_audio,
        preview_key=preview_key,
    )
    session.add(asset)
    session.commit()
    return asset


def known_object_keys(session: Session, keys: list[str]) -> set[str]:
    """Those of ``keys`` that are some media's original or preview."""
    if not keys:
        return set()
    originals = session.exec(select(MediaAsset.object_key).where(col(MediaAsset.object_key).in_(keys))).all()
    previews = session.exec(select(MediaAsset.preview_key).where(col(MediaAsset.preview_key).in_(keys))).all()
    return {key for key in [*originals, *previews] if key is not None}


def known_sha256(session: Session, digests: list[str]) -> set[str]:
    """Those of ``digests`` that some media (of any user) has: their shared rendition is still needed."""
    if not digests:
        return set()
    return set(session.exec(select(MediaAsset.sha256).where(col(MediaAsset.sha256).in_(digests))).all())


def delete_media(session: Session, *, media_id: int) -> list[tuple[int, PostStatus]]:
    """Delete the asset unless a post that may still publish uses it; then nothing is deleted and those posts
    are returned. Finished posts (published, cancelled) lose their link to it."""

    def pinning() -> list[tuple[int, PostStatus]]:
        pinned = session.exec(
            select(Post.id, Post.status)
            .join(PostMedia, PostMedia.post_id == Post.id)  # type: ignore[arg-type]
            .where(PostMedia.media_id == media_id, col(Post.status).in_(MEDIA_PINNING_STATUSES))
            .order_by(col(Post.id))
        ).all()
        return [(post_id, PostStatus(status)) for post_id, status in pinned if post_id is not None]

    finished = select(Post.id).where(col(Post.status).not_in(MEDIA_PINNING_STATUSES))
    return delete_unless_pinned(
        session,
        pinning,
        [
            delete(PostMedia).where(
                col(PostMedia.media_id) == media_id, col(PostMedia.post_id).in_(finished)
            ),
            delete(MediaAsset).where(col(MediaAsset.id) == media_id),
        ],
    )
