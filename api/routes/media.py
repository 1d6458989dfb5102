"""/v1/media: upload images and videos, list, inspect and delete them."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from minio import Minio
from starlette.concurrency import run_in_threadpool

from api.crud import media as crud
from api.deps import CurrentUser, OwnedMediaDep, ServicesDep, SessionDep
from api.errors import ApiError
from api.openapi import problems
from api.pagination import decode_media_cursor, encode_media_cursor
from api.schemas.common import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from api.schemas.media import MediaOut, MediaPage
from api.uploads import FILE_FIELD, ReceivedFile, examine, receive_upload

log = logging.getLogger("chronogram.api.media")

router = APIRouter(prefix="/v1/media", tags=["media"], responses=problems(401))

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {
                        FILE_FIELD: {
                            "type": "string",
                            "format": "binary",
                            "description": "A JPEG, PNG or WebP image (at most 8 MB) or an MP4/MOV video "
                            "(at most 300 MB)",
                        }
                    },
                }
            }
        },
    }
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=MediaOut,
    summary="Upload an image or a video",
    description="Send one file as multipart/form-data, in a part named `file`. The content decides what it is "
    "(the declared type and file name are ignored). Images are checked now against Instagram's rules: format "
    "(JPEG, PNG, WebP; converted to JPEG when published), at most 8 MB and 50 megapixels, not damaged. The "
    "aspect ratio is checked when a post uses the image, as it depends on the post type.",
    openapi_extra=_UPLOAD_BODY,
    responses=problems(400, 413, 415, 422, 503),
)
async def upload_media(
    request: Request, user: CurrentUser, services: ServicesDep, session: SessionDep
) -> MediaOut:
    settings = services.settings
    received = await receive_upload(
        request,
        max_image_bytes=settings.api_max_image_upload_bytes,
        max_video_bytes=settings.api_max_video_upload_bytes,
    )
    try:
        examined = await run_in_threadpool(examine, received)
        key = f"uploads/{user.user_id}/{uuid.uuid4().hex}.{examined.extension}"
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
        asset = await run_in_threadpool(
            crud.add_media,
            session,
            owner_id=user.user_id,
            object_key=key,
            content_type=examined.content_type,
            size_bytes=received.size,
            sha256=received.sha256,
            width=examined.width,
            height=examined.height,
        )
    except Exception:
        # Without its row the object is unreachable: remove it rather than leave it behind.
        await run_in_threadpool(_remove, services.storage, settings.media_bucket, key)
        raise
    return MediaOut.from_row(asset)


def _store(storage: Minio, bucket: str, key: str, received: ReceivedFile, content_type: str) -> None:
    received.file.seek(0)
    storage.put_object(bucket, key, received.file, length=received.size, content_type=content_type)


def _remove(storage: Minio, bucket: str, key: str) -> None:
    try:
        storage.remove_object(bucket, key)
    except Exception:
        log.warning("could not remove object %s from bucket %s", key, bucket, exc_info=True)


@router.get(
    "", response_model=MediaPage, summary="List uploaded media, newest first", responses=problems(422)
)
async def list_media(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> MediaPage:
    before_id = decode_media_cursor(cursor) if cursor is not None else None
    rows = await run_in_threadpool(
        crud.list_media, session, owner_id=user.user_id, limit=limit + 1, before_id=before_id
    )
    page = rows[:limit]
    next_cursor = encode_media_cursor(page[-1].id) if len(rows) > limit and page[-1].id is not None else None
    return MediaPage(data=[MediaOut.from_row(row) for row in page], next_cursor=next_cursor)


@router.get("/{media_id}", response_model=MediaOut, summary="One uploaded media", responses=problems(404))
async def get_media(media: OwnedMediaDep) -> MediaOut:
    return MediaOut.from_row(media)


@router.delete(
    "/{media_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an uploaded media",
    description="Refused (409) while a post that may still be published uses it: scheduled, publishing, or "
    "failed (a failed post can be retried). Published and cancelled posts keep their record without it.",
    responses=problems(404, 409),
)
async def delete_media(media: OwnedMediaDep, services: ServicesDep, session: SessionDep) -> Response:
    assert media.id is not None
    media_id, key = media.id, media.object_key
    pinned = await run_in_threadpool(crud.delete_media, session, media_id=media_id)
    if pinned:
        listed = ", ".join(f"post {post_id} ({post_status.value})" for post_id, post_status in pinned[:5])
        raise ApiError(409, "media_in_use", f"media {media_id} is used by {listed}")
    # After the commit: an object without a row is harmless, a row without its object is not.
    await run_in_threadpool(_remove, services.storage, services.settings.media_bucket, key)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
