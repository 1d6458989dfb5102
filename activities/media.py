"""Media activities: read a post's objects from storage, validate them, and store what Instagram will fetch."""

from __future__ import annotations

import io

from minio import Minio
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.rows import post_with_media
from chronogram.contracts import (
    ErrorType,
    MediaInterface,
    PostRef,
    PreparedMedia,
    PreparedMediaList,
)
from chronogram.enums import PostType
from chronogram.media_rules import (
    MediaRejected,
    VideoFacts,
    check_aspect_ratio,
    check_video,
    render_image,
    sniff_video,
)
from chronogram.models import MediaAsset
from chronogram.previews import rendition_key

__all__ = ["MediaActivities", "rendition_key"]


class MediaActivities(MediaInterface):
    """Blocking (MinIO and SQLAlchemy are synchronous): registered with the worker's thread pool."""

    def __init__(self, storage: Minio, bucket: str, engine: Engine) -> None:
        self._storage = storage
        self._bucket = bucket
        self._engine = engine

    @activity.defn
    def prepare_media(self, request: PostRef) -> PreparedMediaList:
        with Session(self._engine) as session:
            post, rows = post_with_media(session, request.post_id)
            post_type = post.type
        if not rows:
            raise ApplicationError(
                f"post {request.post_id} has no media", type=ErrorType.MEDIA_REJECTED, non_retryable=True
            )

        prepared = []
        for item, asset in rows:
            activity.heartbeat(item.position)
            try:
                key = self._prepare_one(asset, post_type)
            except MediaRejected as rejected:
                raise ApplicationError(
                    f"media #{item.position + 1} ({asset.object_key.rsplit('/', 1)[-1]}): {rejected.message}",
                    rejected.code,
                    type=ErrorType.MEDIA_REJECTED,
                    non_retryable=True,
                ) from None
            prepared.append(PreparedMedia(position=item.position, rendition_key=key, kind=asset.kind))
        return PreparedMediaList(items=prepared)

    def _prepare_one(self, asset: MediaAsset, post_type: PostType) -> str:
        if asset.is_video:
            head = self._read(asset.object_key, length=64)
            if sniff_video(head) is None:
                raise MediaRejected("unsupported_video_format", "the video is not an MP4 or MOV file")
            check_video(
                VideoFacts(
                    size_bytes=asset.size_bytes,
                    duration_ms=asset.duration_ms,
                    width=asset.width,
                    height=asset.height,
                    video_codec=asset.video_codec,
                    audio_codec=asset.audio_codec,
                    frame_rate=asset.frame_rate,
                ),
                post_type,
            )
            return rendition_key(asset)

        rendition = render_image(self._read(asset.object_key))
        check_aspect_ratio(rendition.width, rendition.height, post_type)
        key = rendition_key(asset)
        self._storage.put_object(
            self._bucket,
            key,
            io.BytesIO(rendition.data),
            length=len(rendition.data),
            content_type=rendition.content_type,
        )
        return key

    def _read(self, key: str, length: int = 0) -> bytes:
        response = self._storage.get_object(self._bucket, key, length=length)
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()
