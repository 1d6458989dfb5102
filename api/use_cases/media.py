"""Uploaded media: store a received file (checked, then in object storage, then recorded), list, delete."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable

from minio import Minio
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.crud import media as crud
from api.deps import AppServices
from api.errors import ApiError
from api.pagination import decode_media_cursor, encode_media_cursor
from api.schemas.media import MediaOut, MediaPage
from api.uploads import ReceivedFile, examine
from chronogram.models import MediaAsset

log = logging.getLogger("chronogram.api.media")


async def store_upload(services: AppServices, received: ReceivedFile, *, owner_id: int) -> MediaAsset:
    """Check the file against Instagram's media rules (an ApiError if it breaks one), store it and record it.
    Closes ``received``.

    The row is written in a session of its own, opened once the file is received and stored, and closed at once:
    an upload holds a database connection for that one write only."""
    settings = services.settings
    try:
        examined = await run_in_threadpool(examine, received)
        key = f"uploads/{owner_id}/{uuid.uuid4().hex}.{examined.extension}"
        try:
            await run_in_threadpool(
                _store, services.storage, settings.media_bucket, key, received, examined.content_type
            )
        except Exception:
            log.exception("could not store upload %s", key)
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
        )
        return await run_in_threadpool(_in_own_session, services.engine, add)
    except Exception:
        # Without its row the object is unreachable: remove it rather than leave it behind.
        await run_in_threadpool(_remove, services.storage, settings.media_bucket, key)
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


async def delete_media(services: AppServices, session: Session, media: MediaAsset) -> None:
    """Delete the media's row, then its object; 409 while a post that may still publish uses it."""
    assert media.id is not None
    media_id, key = media.id, media.object_key
    pinned = await run_in_threadpool(crud.delete_media, session, media_id=media_id)
    if pinned:
        listed = ", ".join(f"post {post_id} ({post_status.value})" for post_id, post_status in pinned[:5])
        raise ApiError(409, "media_in_use", f"media {media_id} is used by {listed}")
    # After the commit: an object without a row is harmless, a row without its object is not.
    await run_in_threadpool(_remove, services.storage, services.settings.media_bucket, key)


def _in_own_session(engine: Engine, write: Callable[[Session], MediaAsset]) -> MediaAsset:
    with Session(engine, expire_on_commit=False) as session:
        return write(session)


def _store(storage: Minio, bucket: str, key: str, received: ReceivedFile, content_type: str) -> None:
    received.file.seek(0)
    storage.put_object(bucket, key, received.file, length=received.size, content_type=content_type)


def _remove(storage: Minio, bucket: str, key: str) -> None:
    try:
        storage.remove_object(bucket, key)
    except Exception:
        log.warning("could not remove object %s from bucket %s", key, bucket, exc_info=True)
