"""Uploaded images and videos."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chronogram.contracts import MediaKind
from chronogram.models import MediaAsset

_VIDEO_EXAMPLE: dict[str, Any] = {
    "id": 8,
    "kind": "VIDEO",
    "content_type": "video/mp4",
    "size_bytes": 18_402_113,
    "sha256": "1c3b5a7d9f1e3c5b7a9d1f3e9f2c4e0b6d1a3f5e7c9b8a6d4f2e0c1b3a5d7f9e",
    "width": 1080,
    "height": 1920,
    "duration_ms": 14_200,
    "rotation": 0,
    "video_codec": "h264",
    "audio_codec": "aac",
    "frame_rate": 30.0,
    "has_audio": True,
    "created_at": "2026-05-01T09:05:00Z",
}


class MediaOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    "kind": "IMAGE",
                    "content_type": "image/jpeg",
                    "size_bytes": 482113,
                    "sha256": "9f2c4e0b6d1a3f5e7c9b8a6d4f2e0c1b3a5d7f9e1c3b5a7d9f1e3c5b7a9d1f3e",
                    "width": 1080,
                    "height": 1350,
                    "duration_ms": None,
                    "rotation": None,
                    "video_codec": None,
                    "audio_codec": None,
                    "frame_rate": None,
                    "has_audio": None,
                    "created_at": "2026-05-01T09:00:00Z",
                },
                _VIDEO_EXAMPLE,
            ]
        }
    )

    id: int
    kind: MediaKind
    content_type: str = Field(description="Sniffed from the content, never taken from the upload's headers")
    size_bytes: int
    sha256: str
    width: int | None = Field(
        description="As displayed: EXIF orientation applied to images, rotation to videos (a phone video recorded "
        "upright is 1080x1920 whatever its stored frames are); null for videos uploaded before probing"
    )
    height: int | None
    duration_ms: int | None = Field(description="Videos: their duration, measured at upload; null for images")
    rotation: int | None = Field(
        description="Videos: the display rotation in degrees (0, 90, 180, 270) the file declares; null for images"
    )
    video_codec: str | None = Field(
        description="Videos: FFmpeg's name of the video codec, e.g. `h264`, `hevc`"
    )
    audio_codec: str | None = Field(
        description="Videos: FFmpeg's name of the audio codec (`aac`); null if silent"
    )
    frame_rate: float | None = Field(description="Videos: frames per second (average)")
    has_audio: bool | None = Field(description="Videos: whether there is an audio track")
    created_at: datetime

    @classmethod
    def from_row(cls, row: MediaAsset) -> MediaOut:
        assert row.id is not None
        return cls(
            id=row.id,
            kind=row.kind,
            content_type=row.content_type,
            size_bytes=row.size_bytes,
            sha256=row.sha256,
            width=row.width,
            height=row.height,
            duration_ms=row.duration_ms,
            rotation=row.rotation,
            video_codec=row.video_codec,
            audio_codec=row.audio_codec,
            frame_rate=row.frame_rate,
            has_audio=row.has_audio,
            created_at=row.created_at,
        )


class MediaUrls(BaseModel):
    """Presigned GET URLs of the media's objects; anyone holding one can read that object until it expires."""

    original: str = Field(description="The file as uploaded")
    rendition: str | None = Field(
        description="What Instagram is sent: the JPEG made when a post using an image was prepared (null until "
        "then); for a video, the original"
    )
    thumbnail: str | None = Field(
        description="A JPEG at most 320 px on its longer side: a video's first frame (Instagram's default cover "
        "frame), or its frame at `thumb_offset_ms` when asked; an image's preview; null for media uploaded before "
        "previews"
    )
    expire_at: datetime


class MediaDetail(MediaOut):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_VIDEO_EXAMPLE,
                    "urls": {
                        "original": "http://localhost:9000/chronogram-media/uploads/1/5d1c.mp4?X-Amz-Algorithm=…",
                        "rendition": "http://localhost:9000/chronogram-media/uploads/1/5d1c.mp4?X-Amz-Algorithm=…",
                        "thumbnail": "http://localhost:9000/chronogram-media/uploads/1/5d1c.preview.jpg?X-Amz-…",
                        "expire_at": "2026-05-01T09:20:00Z",
                    },
                }
            ]
        }
    )

    urls: MediaUrls


class MediaPage(BaseModel):
    data: list[MediaOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")
