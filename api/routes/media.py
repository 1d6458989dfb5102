"""/v1/media: upload images and videos, list, inspect and delete them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from api.deps import CurrentUser, OwnedMediaDep, ServicesDep, SessionDep
from api.openapi import problems
from api.schemas.common import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from api.schemas.media import MediaOut, MediaPage
from api.uploads import FILE_FIELD, receive_upload
from api.use_cases import media

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
    received = await receive_upload(
        request,
        max_image_bytes=services.settings.api_max_image_upload_bytes,
        max_video_bytes=services.settings.api_max_video_upload_bytes,
    )
    return MediaOut.from_row(await media.store_upload(services, session, received, owner_id=user.user_id))


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


@router.get("/{media_id}", response_model=MediaOut, summary="One uploaded media", responses=problems(404))
async def get_media(asset: OwnedMediaDep) -> MediaOut:
    return MediaOut.from_row(asset)


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
