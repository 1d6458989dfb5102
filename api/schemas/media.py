"""Uploaded images and videos."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from chronogram.contracts import MediaKind
from chronogram.models import MediaAsset


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
                    "created_at": "2026-05-01T09:00:00Z",
                }
            ]
        }
    )

    id: int
    kind: MediaKind
    content_type: str = Field(description="Sniffed from the content, never taken from the upload's headers")
    size_bytes: int
    sha256: str
    width: int | None = Field(description="As displayed (EXIF orientation applied); null for videos")
    height: int | None
    duration_ms: int | None = Field(description="Not measured yet: always null for now")
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
            created_at=row.created_at,
        )


class MediaPage(BaseModel):
    data: list[MediaOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")
