"""Uploaded media: store a received file (checked, then in object storage, then recorded), list, delete."""

from __future__ import annotations

import functools
import io
import logging
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from minio import Minio
from minio.error import S3Error
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.crud import media as crud
from api.deps import AppServices
from api.errors import ApiError
from api.pagination import decode_media_cursor, encode_media_cursor
from api.schemas.media import MediaDetail, MediaOut, MediaPage, MediaUrls
from api.uploads import Examined, ReceivedFile, examine
from chronogram.media_rules import MediaRejected, thumb_offset_problem
from chronogram.models import MediaAsset
from chronogram.previews import UPLOADS_PREFIX, frame_key, frames_prefix, preview_key, rendition_key
from chronogram.video_probe import ProbeBusy, probe_video

log = logging.getLogger("chronogram.api.media")

# How long the URLs of GET /v1/media/{id} work: long enough to show or download, short enough not to be a link.
MEDIA_URL_TTL = timedelta(minutes=15)


async def store_upload(services: AppServices, received: ReceivedFile, *, owner_id: int) -> MediaAsset:
    """Check the file against Instagram's media rules (an ApiError if it breaks one), store it and record it.
    Closes ``received``.

    The row is written in a session of its own, opened once the file is received and stored, and closed at once:
    an upload holds a database connection for that one write only."""
    settings = services.settings
    try:
        examined = await run_in_threadpool(examine, received)
        key = f"{UPLOADS_PREFIX}{owner_id}/{uuid.uuid4().hex}.{examined.extension}"
        preview = preview_key(key) if examined.preview is not None else None
        try:
            await run_in_threadpool(
                _store, services.storage, settings.media_bucket, key, received, examined, preview
            )
        except Exception:
            log.exception("could not store upload %s", key)
            await run_in_threadpool(_remove_all, services.storage, settings.media_bucket, [key, preview])
            raise ApiError(
                503, "storage_unavailable", "the file could not be stored; try again shortly"
            ) from None
    finally:
        received.file.close()
    try:
        add = functools.partial(
            crud.add_media,
            owner_id=owner_id,
            object_key=key,
            content_type=examined.content_type,
            size_bytes=received.size,
            sha256=received.sha256,
            width=examined.width,
            height=examined.height,
            duration_ms=examined.duration_ms,
            rotation=examined.rotation,
            video_codec=examined.video_codec,
            audio_codec=examined.audio_codec,
            frame_rate=examined.frame_rate,
            has_audio=examined.has_audio,
            preview_key=preview,
        )
        return await run_in_threadpool(_in_own_session, services.engine, add)
    except Exception:
        # Without its row the objects are unreachable: remove them rather than leave them behind.
        await run_in_threadpool(_remove_all, services.storage, settings.media_bucket, [key, preview])
        raise


async def page_of_media(session: Session, *, owner_id: int, limit: int, cursor: str | None) -> MediaPage:
    """The user's media after ``cursor``, newest first, and the cursor of the next page if any."""
    before_id = decode_media_cursor(cursor) if cursor is not None else None
    rows = await run_in_threadpool(
        crud.list_media, session, owner_id=owner_id, limit=limit + 1, before_id=before_id
    )
    page = rows[:limit]
    next_cursor = encode_media_cursor(page[-1].id) if len(rows) > limit and page[-1].id is not None else None
    return MediaPage(data=[MediaOut.from_row(row) for row in page], next_cursor=next_cursor)


async def media_detail(
    services: AppServices, asset: MediaAsset, *, thumb_offset_ms: int | None = None
) -> MediaDetail:
    """The media with presigned URLs of its objects (signed locally; one storage request to see whether an
    image's rendition exists). With ``thumb_offset_ms`` (a reel's), a video's thumbnail is its frame at that
    instant: made from the stored video by the bounded probe the first time it is asked for (about as long as an
    upload's probe), then kept beside the video."""
    bucket = services.settings.media_bucket
    frame = None
    if thumb_offset_ms:  # 0 is the first frame: the preview made at upload
        frame = await _frame(services, asset, thumb_offset_ms)
    try:
        urls = await run_in_threadpool(_urls, services.storage, bucket, asset, frame)
    except Exception:
        log.exception("could not sign the URLs of media %s", asset.id)
        raise ApiError(
            503, "storage_unavailable", "object storage is unavailable; try again shortly"
        ) from None
    return MediaDetail(**MediaOut.from_row(asset).model_dump(), urls=urls)


async def _frame(services: AppServices, asset: MediaAsset, offset_ms: int) -> str:
    field = "thumb_offset_ms"
    if not asset.is_video:
        raise ApiError(422, "not_a_video", "thumb_offset_ms applies to videos only", field=field)
    problem = thumb_offset_problem(offset_ms, asset.duration_ms)
    if problem is not None:
        raise ApiError(422, problem.code, problem.message, field=field)
    key = frame_key(asset.object_key, offset_ms)
    try:
        await run_in_threadpool(
            _make_frame, services.storage, services.settings.media_bucket, asset.object_key, key, offset_ms
        )
    except MediaRejected as rejected:
        raise ApiError(422, rejected.code, rejected.message, field=field) from None
    except ProbeBusy:
        raise ApiError(
            503,
            "upload_capacity_reached",
            "the server is reading as many videos as it can at once; ask again shortly",
            headers={"Retry-After": "10"},
        ) from None
    except Exception:
        log.exception("could not make the frame %s", key)
        raise ApiError(
            503, "storage_unavailable", "object storage is unavailable; try again shortly"
        ) from None
    return key


def _make_frame(storage: Minio, bucket: str, original: str, key: str, offset_ms: int) -> None:
    if _exists(storage, bucket, key):
        return
    with tempfile.TemporaryFile(prefix="chronogram-frame-") as copy:
        response = storage.get_object(bucket, original)
        try:
            for chunk in response.stream(256 * 1024):
                copy.write(chunk)
        finally:
            response.close()
            response.release_conn()
        probe = probe_video(copy, thumb_offset_ms=offset_ms)
    storage.put_object(
        bucket, key, io.BytesIO(probe.thumbnail), length=len(probe.thumbnail), content_type="image/jpeg"
    )


def _urls(storage: Minio, bucket: str, asset: MediaAsset, frame: str | None) -> MediaUrls:
    expire_at = datetime.now(UTC) + MEDIA_URL_TTL

    def sign(key: str) -> str:
        return str(storage.presigned_get_object(bucket, key, expires=MEDIA_URL_TTL))

    rendition = rendition_key(asset)
    thumbnail = frame or asset.preview_key
    return MediaUrls(
        original=sign(asset.object_key),
        rendition=sign(rendition) if asset.is_video or _exists(storage, bucket, rendition) else None,
        thumbnail=sign(thumbnail) if thumbnail is not None else None,
        expire_at=expire_at,
    )


def _exists(storage: Minio, bucket: str, key: str) -> bool:
    try:
        storage.stat_object(bucket, key)
    except S3Error as error:
        if error.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
            return False
        raise
    return True


async def delete_media(services: AppServices, session: Session, media: MediaAsset) -> None:
    """Delete the media's row, then its objects (the original, its preview, and an image's rendition unless
    another media has the same content); 409 while a post that may still publish uses it."""
    assert media.id is not None
    media_id = media.id
    pinned = await run_in_threadpool(crud.delete_media, session, media_id=media_id)
    if pinned:
        listed = ", ".join(f"post {post_id} ({post_status.value})" for post_id, post_status in pinned[:5])
        raise ApiError(409, "media_in_use", f"media {media_id} is used by {listed}")
    # After the commit: an object without a row is harmless (the sweep removes it), a row without its object is not.
    keys: list[str | None] = [media.object_key, media.preview_key]
    if not media.is_video:
        shared = await run_in_threadpool(crud.known_sha256, session, [media.sha256])
        if not shared:
            keys.append(rendition_key(media))
    if media.is_video:
        keys += await run_in_threadpool(
            _listed, services.storage, services.settings.media_bucket, frames_prefix(media.object_key)
        )
    await run_in_threadpool(_remove_all, services.storage, services.settings.media_bucket, keys)


def _listed(storage: Minio, bucket: str, prefix: str) -> list[str | None]:
    try:
        return [item.object_name for item in storage.list_objects(bucket, prefix=prefix)]
    except Exception:
        log.warning(
            "could not list %s in bucket %s; the sweep will remove them", prefix, bucket, exc_info=True
        )
        return []


def _in_own_session(engine: Engine, write: Callable[[Session], MediaAsset]) -> MediaAsset:
    with Session(engine, expire_on_commit=False) as session:
        return write(session)


def _store(
    storage: Minio, bucket: str, key: str, received: ReceivedFile, examined: Examined, preview: str | None
) -> None:
    received.file.seek(0)
    storage.put_object(bucket, key, received.file, length=received.size, content_type=examined.content_type)
    if preview is not None and examined.preview is not None:
        storage.put_object(
            bucket,
            preview,
            io.BytesIO(examined.preview),
            length=len(examined.preview),
            content_type="image/jpeg",
        )


def _remove_all(storage: Minio, bucket: str, keys: list[str | None]) -> None:
    for key in keys:
        if key is not None:
            _remove(storage, bucket, key)


def _remove(storage: Minio, bucket: str, key: str) -> None:
    try:
        storage.remove_object(bucket, key)
    except Exception:
        log.warning("could not remove object %s from bucket %s", key, bucket, exc_info=True)
