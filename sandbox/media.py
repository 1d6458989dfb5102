"""Fetching and checking media the way Meta does: a real HTTP download, then format and size rules.

Images are judged at container creation (synchronous 400s); videos after the fact, by turning the container
to ERROR. Videos are demuxed and decoded with PyAV (FFmpeg), and held to Meta's video specs for their media type
(reference 5.2-5.4): a file FFmpeg cannot decode, or one outside the specs, is "unsupported" (2207026); a
``thumb_offset`` at or past the end of the video is 2207057. Bitrate, GOP structure and edit lists are not checked.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Literal

import av
import httpx
from PIL import Image, UnidentifiedImageError

from sandbox.config import SandboxConfig
from sandbox.errors import GraphError, catalogued

# Container ``status`` subcodes for videos (reference 6.5).
VIDEO_UNSUPPORTED = 2207026
VIDEO_DOWNLOAD_FAILED = 2207077
VIDEO_UNPROCESSABLE = 2207085
COVER_UNSUPPORTED = 2207005
THUMB_OFFSET_INVALID = 2207057


@dataclass(frozen=True)
class VideoSpec:
    min_seconds: float
    max_seconds: float
    min_aspect: float
    max_aspect: float


# Reference 5.2 (reels), 5.3 (video stories), 5.4 (carousel video items: the legacy feed-video spec).
VIDEO_SPECS: dict[str, VideoSpec] = {
    "REELS": VideoSpec(3, 15 * 60, 0.01, 10.0),
    "STORIES": VideoSpec(3, 60, 0.1, 10.0),
    "VIDEO": VideoSpec(3, 60, 4 / 5, 16 / 9),
}
VIDEO_CODECS = frozenset({"h264", "hevc"})
MIN_FPS, MAX_FPS = 23.0, 60.0
MAX_VIDEO_WIDTH = 1920
# Frames decoded at most per video: enough to reach every frame of a test video, bounded for any other.
_MAX_DECODED_FRAMES = 20_000

# Decompression-bomb guard for a process that downloads whatever URL it is given.
Image.MAX_IMAGE_PIXELS = 100_000_000


class FetchError(Exception):
    def __init__(self, reason: Literal["unreachable", "timeout", "too_large"], detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class MediaInfo:
    """What the sandbox learned about a file; reported in the ground-truth endpoints."""

    kind: Literal["image", "video"]
    format: str
    bytes: int
    width: int | None = None
    height: int | None = None
    # Meta scales images narrower than 320 px up and wider than 1440 px down instead of refusing them.
    stored_width: int | None = None
    stored_height: int | None = None
    # Videos only.
    duration_ms: int | None = None
    video_codec: str | None = None
    frame_rate: float | None = None


async def fetch(http: httpx.AsyncClient, url: str, *, max_bytes: int, time_limit: float) -> bytes:
    """GET ``url``; fail fast once more than ``max_bytes`` arrive."""
    if not url.lower().startswith(("http://", "https://")):
        raise FetchError("unreachable", "not an http(s) URL")
    try:
        async with http.stream("GET", url, timeout=time_limit) as response:
            if response.status_code != 200:
                raise FetchError("unreachable", f"HTTP {response.status_code}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError("too_large", f"more than {max_bytes} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.TimeoutException as exc:
        raise FetchError("timeout", type(exc).__name__) from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise FetchError("unreachable", type(exc).__name__) from None


def sniff(data: bytes) -> Literal["jpeg", "png", "gif", "webp", "mp4", "mov"] | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    boxes = _top_level_boxes(data)
    if boxes and boxes[0] == b"ftyp" and b"moov" in boxes:
        return "mov" if data[8:12] == b"qt  " else "mp4"
    # QuickTime files from old encoders start without ftyp.
    if boxes and boxes[0] in (b"moov", b"wide", b"mdat", b"free") and b"moov" in boxes:
        return "mov"
    return None


def _top_level_boxes(data: bytes, limit: int = 32) -> list[bytes]:
    """ISO-BMFF box types in order (``ftyp``, ``moov``, ``mdat``…); empty if the bytes are not boxes."""
    boxes: list[bytes] = []
    pos = 0
    while pos + 8 <= len(data) and len(boxes) < limit:
        size = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if not kind.isalnum() and kind not in (b"qt  ", b"free", b"wide", b"skip"):
            return []
        if size == 1 and pos + 16 <= len(data):
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
        elif size == 0:
            size = len(data) - pos
        if size < 8:
            return []
        boxes.append(kind)
        pos += size
    return boxes


def inspect_image(data: bytes, config: SandboxConfig, *, check_aspect: bool) -> MediaInfo:
    """Raise Meta's error for an unusable image, else describe it."""
    if len(data) > config.max_image_bytes:
        raise catalogued(36000, 2207004)
    kind = sniff(data)
    if kind in ("mp4", "mov"):
        # An MP4 sent as image_url is reported as an unsupported image format (reference 5.1).
        raise catalogued(36001, 2207005)
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format or "unknown"
            width, height = image.size
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError):
        if kind is None:
            raise catalogued(9004, 2207052) from None
        raise catalogued(36001, 2207005) from None
    allowed = {"JPEG"} | ({"PNG"} if config.accept_png else set())
    # Pillow reports multi-picture JPEGs (MPO), which Meta calls "extended JPEG" and refuses, as MPO.
    if image_format not in allowed:
        raise catalogued(36001, 2207005)
    if check_aspect:
        ratio = width / height
        if not (config.min_aspect_ratio - 1e-3 <= ratio <= config.max_aspect_ratio + 1e-3):
            raise catalogued(
                36003,
                2207009,
                f"The submitted image with aspect ratio ('{width}/{height}') cannot be published. "
                "Please submit an image with a valid aspect ratio.",
            )
    scale = 1.0
    if width < config.min_image_width:
        scale = config.min_image_width / width
    elif width > config.max_image_width:
        scale = config.max_image_width / width
    return MediaInfo(
        kind="image",
        format=image_format,
        bytes=len(data),
        width=width,
        height=height,
        stored_width=round(width * scale),
        stored_height=round(height * scale),
    )


def image_fetch_error(error: FetchError) -> GraphError:
    if error.reason == "timeout":
        return catalogued(-2, 2207003)
    if error.reason == "too_large":
        return catalogued(36000, 2207004)
    return catalogued(9004, 2207052)


def inspect_video(data: bytes, media_type: str, thumb_offset_ms: int | None = None) -> MediaInfo | int:
    """MediaInfo for a video Meta would process as ``media_type`` (REELS, STORIES, VIDEO), else the subcode its
    container's ERROR status carries. Blocking (decodes every frame): run it in a thread."""
    kind = sniff(data)
    if kind not in ("mp4", "mov"):
        return VIDEO_UNSUPPORTED
    try:
        facts = _decode(data)
    except (av.FFmpegError, ValueError, OSError, MemoryError):
        return VIDEO_UNSUPPORTED
    if facts is None:
        return VIDEO_UNSUPPORTED
    duration_ms, width, height, codec, fps = facts
    spec = VIDEO_SPECS.get(media_type, VIDEO_SPECS["VIDEO"])
    ratio = width / height
    if (
        codec not in VIDEO_CODECS
        or not MIN_FPS <= fps <= MAX_FPS
        or width > MAX_VIDEO_WIDTH
        or not spec.min_seconds <= duration_ms / 1000 <= spec.max_seconds
        or not spec.min_aspect - 1e-3 <= ratio <= spec.max_aspect + 1e-3
    ):
        return VIDEO_UNSUPPORTED
    if thumb_offset_ms is not None and thumb_offset_ms >= duration_ms:
        return THUMB_OFFSET_INVALID
    return MediaInfo(
        kind="video",
        format=kind.upper(),
        bytes=len(data),
        width=width,
        height=height,
        duration_ms=duration_ms,
        video_codec=codec,
        frame_rate=fps,
    )


def _decode(data: bytes) -> tuple[int, int, int, str, float] | None:
    """(duration ms, displayed width, displayed height, codec, frames per second), decoding every frame as Meta's
    transcoder would; None if a picture is missing or damaged."""
    with av.open(io.BytesIO(data), mode="r") as container:
        if not container.streams.video:
            return None
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        # Damaged pictures raise instead of being concealed.
        stream.codec_context.options = {"err_detect": "explode"}
        frames, rotation = 0, 0
        for frame in container.decode(stream):
            if frames == 0:
                rotation = int(frame.rotation or 0) % 360
            frames += 1
            if frames >= _MAX_DECODED_FRAMES:
                break
        if frames == 0:
            return None
        duration_ms = _duration_ms(container, stream)
        rate = stream.average_rate or stream.guessed_rate
        width, height = stream.codec_context.width, stream.codec_context.height
        if rotation in (90, 270):
            width, height = height, width
        if width <= 0 or height <= 0 or duration_ms <= 0:
            return None
        return duration_ms, width, height, stream.codec_context.name, float(rate) if rate else 0.0


def _duration_ms(container: Any, stream: Any) -> int:
    if stream.duration is not None and stream.time_base is not None:
        return int(stream.duration * stream.time_base * 1000)
    return int(container.duration / 1000) if container.duration is not None else 0


def video_fetch_subcode(error: FetchError) -> int:
    return VIDEO_UNPROCESSABLE if error.reason == "too_large" else VIDEO_DOWNLOAD_FAILED
