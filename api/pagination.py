"""Opaque list cursors: the keyset position after a page's last row, as a URL-safe string.

A cursor that this API did not make answers 422 ``invalid_cursor``, never a server error.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Protocol

from api.errors import ApiError
from api.schemas.common import MAX_ID


class _Keyed(Protocol):
    @property
    def publish_at(self) -> datetime: ...
    @property
    def id(self) -> int | None: ...


def encode_post_cursor(post: _Keyed) -> str:
    """After ``post`` in the order of GET /v1/posts: (publish_at, id)."""
    raw = json.dumps([post.publish_at.astimezone(UTC).isoformat(), post.id], separators=(",", ":"))
    return _encode(raw)


def decode_post_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = json.loads(_decode(cursor))
        instant, post_id = datetime.fromisoformat(raw[0]), int(raw[1])
        if instant.tzinfo is None or not 1 <= post_id <= MAX_ID or isinstance(raw[1], bool):
            raise ValueError(cursor)
    except (ValueError, TypeError, IndexError, KeyError, binascii.Error, UnicodeDecodeError):
        raise _invalid() from None
    return instant, post_id


def encode_media_cursor(media_id: int) -> str:
    """After media ``media_id`` in the order of GET /v1/media: newest first, by id."""
    return _encode(f"m:{media_id}")


def decode_media_cursor(cursor: str) -> int:
    try:
        raw = _decode(cursor).decode()
        prefix, value = raw.split(":", 1)
        media_id = int(value)
        if prefix != "m" or not 1 <= media_id <= MAX_ID:
            raise ValueError(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _invalid() from None
    return media_id


def encode_template_cursor(template_id: int) -> str:
    """After template ``template_id`` in the order of GET /v1/templates: by id."""
    return _encode(f"t:{template_id}")


def decode_template_cursor(cursor: str) -> int:
    try:
        raw = _decode(cursor).decode()
        prefix, value = raw.split(":", 1)
        template_id = int(value)
        if prefix != "t" or not 1 <= template_id <= MAX_ID:
            raise ValueError(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _invalid() from None
    return template_id


def _encode(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> bytes:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


def _invalid() -> ApiError:
    return ApiError(422, "invalid_cursor", "cursor is not a next_cursor from this list", field="cursor")
