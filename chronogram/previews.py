"""The objects derived from an upload, and the small JPEG shown for an image in lists and pickers (a video's
thumbnail comes from chronogram.video_probe).

Beside each original ``uploads/{owner}/{name}.{ext}`` in the media bucket: its preview ``{name}.preview.jpg`` (a
video's first frame), and for a video the frames asked for at other instants, ``{name}.frame-{ms}.jpg`` (a reel's
thumb_offset).
Renditions (what Instagram fetches) are keyed by content, ``renditions/{sha256}.jpg``, shared by identical images;
a video is sent as uploaded, so the original is its rendition.
"""

from __future__ import annotations

import io
import re

from PIL import Image, ImageOps

from chronogram.models import MediaAsset

PREVIEW_MAX_SIDE = 320
PREVIEW_SUFFIX = ".preview.jpg"
FRAME_INFIX = ".frame-"
_FRAME_KEY = re.compile(r"^(?P<stem>.+)\.frame-\d+\.jpg$")
UPLOADS_PREFIX = "uploads/"
RENDITIONS_PREFIX = "renditions/"


def _stem(object_key: str) -> str:
    return object_key.rsplit(".", 1)[0] if "." in object_key.rsplit("/", 1)[-1] else object_key


def preview_key(object_key: str) -> str:
    """The preview's object key, beside the original's: ``uploads/7/ab12.jpg`` -> ``uploads/7/ab12.preview.jpg``."""
    return _stem(object_key) + PREVIEW_SUFFIX


def frame_key(object_key: str, offset_ms: int) -> str:
    """A video's frame at ``offset_ms``, beside it: ``uploads/7/ab12.mp4`` -> ``uploads/7/ab12.frame-1500.jpg``."""
    return f"{_stem(object_key)}{FRAME_INFIX}{offset_ms}.jpg"


def frames_prefix(object_key: str) -> str:
    """What every frame key of a video starts with (to list and delete them)."""
    return _stem(object_key) + FRAME_INFIX


def frame_stem(key: str) -> str | None:
    """For a frame key, the original's key without its extension; None for any other key."""
    match = _FRAME_KEY.match(key)
    return match.group("stem") if match else None


def rendition_key(asset: MediaAsset) -> str:
    """Where the Instagram-ready copy of an asset lives. Keyed by content, so identical uploads share one and a
    retried activity overwrites its own earlier attempt."""
    if asset.is_video:
        return asset.object_key  # videos go to Instagram as uploaded: Meta transcodes them itself
    return f"{RENDITIONS_PREFIX}{asset.sha256}.jpg"


def image_preview(data: bytes) -> bytes:
    """A JPEG at most PREVIEW_MAX_SIDE on its longer side, orientation applied. Call it on an image that
    media_rules has accepted (its pixel count is bounded). JPEGs are decoded at a reduced scale (draft mode), so
    even a 50-megapixel one costs a few milliseconds; other formats are decoded in full (``preview_of`` makes the
    preview of an image already decoded)."""
    with Image.open(io.BytesIO(data)) as original:
        if original.format == "JPEG":
            original.draft("RGB", (PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE))
        return preview_of(original)


def preview_of(image: Image.Image) -> bytes:
    """The preview of an opened (or decoded) image."""
    shown = ImageOps.exif_transpose(image)
    shown.thumbnail((PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    shown.convert("RGB").save(out, format="JPEG", quality=80)
    return out.getvalue()
