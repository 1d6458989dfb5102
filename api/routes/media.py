"""/v1/media: upload images and videos, list, inspect and delete them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from api.deps import CurrentUser, OwnedMediaDep, ServicesDep, SessionDep, UploadSlotsDep
from api.openapi import problems
from api.schemas.common import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from api.schemas.media import MediaDetail, MediaOut, MediaPage
from api.uploads import FILE_FIELD, receive_upload
from api.use_cases import media
from chronogram.settings import Settings

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


_PER_USER = Settings.model_fields["api_max_concurrent_uploads_per_user"].default
_IDLE_SECONDS = Settings.model_fields["api_upload_idle_timeout_seconds"].default
_UPLOAD_PROBLEMS = {
    408: (
        "The client stopped sending the upload",
        {
            "code": "upload_timed_out",
            "detail": f"nothing of the upload arrived for {_IDLE_SECONDS:g} seconds",
        },
    ),
    429: (
        "Too many uploads of this user in progress; `Retry-After` says when to try again",
        {
            "code": "too_many_uploads",
            "detail": f"you have {_PER_USER} uploads in progress, the most allowed at once; send this one when "
            "one of them ends",
        },
    ),
    503: (
        "Object storage or the database unavailable or busy, or the server receiving the most uploads it takes "
        "at once (`upload_capacity_reached`, with `Retry-After`)",
        {"code": "storage_unavailable", "detail": "the file could not be stored; try again shortly"},
    ),
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=MediaOut,
    summary="Upload an image or a video",
    description="Send one file as multipart/form-data, in a part named `file`. The content decides what it is "
    "(the declared type and file name are ignored). Images are checked now against Instagram's rules: format "
    "(JPEG, PNG, WebP; converted to JPEG when published), at most 8 MB and 50 megapixels, not damaged. Videos "
    "(MP4 or MOV) are probed: a file FFmpeg cannot decode is refused (415); duration, size, rotation, codecs, "
    "frame rate and audio are recorded. Each gets a thumbnail. The aspect ratio and the video rules (duration, "
    "codec, frame rate, size) are checked when a post uses the media, as they depend on the post type.\n\n"
    f"A user may have {_PER_USER} uploads in progress at once by default "
    "(`CHRONOGRAM_API_MAX_CONCURRENT_UPLOADS_PER_USER`); one more answers 429 `too_many_uploads` at once, before "
    "its body is read, with `Retry-After`. An upload whose client sends nothing for "
    f"{_IDLE_SECONDS:g} seconds by default answers 408 `upload_timed_out`.",
    openapi_extra=_UPLOAD_BODY,
    responses=problems(400, 408, 413, 415, 422, 429, 503, examples=_UPLOAD_PROBLEMS),
)
async def upload_media(
    request: Request, user: CurrentUser, services: ServicesDep, slots: UploadSlotsDep
) -> MediaOut:
    settings = services.settings
    # No database session here: the body may take minutes to arrive, and nothing shared is held meanwhile.
    with slots.hold(user.user_id):
        received = await receive_upload(
            request,
            max_image_bytes=settings.api_max_image_upload_bytes,
            max_video_bytes=settings.api_max_video_upload_bytes,
            idle_timeout=settings.api_upload_idle_timeout_seconds,
        )
        return MediaOut.from_row(await media.store_upload(services, received, owner_id=user.user_id))


@router.get(
    "", response_model=MediaPage, summary="List uploaded media, newest first", responses=problems(422)
)
async def list_media(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> MediaPage:
    return await media.page_of_media(session, owner_id=user.user_id, limit=limit, cursor=cursor)


@router.get(
    "/{media_id}",
    response_model=MediaDetail,
    summary="One uploaded media, with short-lived URLs of its files",
    description="What was measured at upload, and presigned URLs, valid 15 minutes, of the original, the "
    "rendition Instagram is sent (an image's appears once a post using it has been prepared) and the thumbnail "
    "(a video's first frame, an image's preview, at most 320 px). With `thumb_offset_ms` (a reel's), a video's "
    "thumbnail is its frame at that instant, made the first time it is asked for; it must be less than the "
    "video's duration (422 `thumb_offset_beyond_duration`), and only videos take it (422 `not_a_video`).",
    responses=problems(404, 422, 503),
)
async def get_media(
    asset: OwnedMediaDep,
    services: ServicesDep,
    thumb_offset_ms: Annotated[
        int | None,
        Query(ge=0, le=15 * 60 * 1000, description="A video's instant to show as its thumbnail, in ms"),
    ] = None,
) -> MediaDetail:
    return await media.media_detail(services, asset, thumb_offset_ms=thumb_offset_ms)


@router.delete(
    "/{media_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an uploaded media",
    description="Refused (409) while a post that may still be published uses it: scheduled, publishing, or "
    "failed (a failed post can be retried). Published and cancelled posts keep their record without it.",
    responses=problems(404, 409),
)
async def delete_media(asset: OwnedMediaDep, services: ServicesDep, session: SessionDep) -> Response:
    await media.delete_media(services, session, asset)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
