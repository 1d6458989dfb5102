"""Instagram's media rules (reference §5), checked where a user can still act: at upload and before publishing.

Images are normalised to what Instagram accepts (JPEG, sRGB/RGB, EXIF orientation applied, width 320..1440)
instead of being refused for what we can fix; what we cannot fix (aspect ratio, size, format) is refused with a
stable code and a message that says which rule and by how much.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from chronogram.enums import PostType

IMAGE_MAX_BYTES = 8 * 1024 * 1024
MIN_ASPECT_RATIO, MAX_ASPECT_RATIO = 4 / 5, 1.91
MIN_WIDTH, MAX_WIDTH = 320, 1440
# Decoding is refused above this many pixels before any pixel is decoded: a tiny file can expand to gigabytes.
MAX_PIXELS = 50_000_000
UPLOADABLE_IMAGE_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})
_JPEG_QUALITY_STEPS = (90, 85, 80, 70)


@dataclass(frozen=True)
class VideoLimits:
    """One post type's video rules (reference §5.2-5.4, after Meta's IG User Media reference)."""

    max_bytes: int
    min_seconds: float
    max_seconds: float
    min_aspect: float
    max_aspect: float
    aspect_text: str


VIDEO_CODECS = frozenset({"h264", "hevc"})
AUDIO_CODECS = frozenset({"aac"})
MIN_FRAME_RATE, MAX_FRAME_RATE = 23.0, 60.0
MAX_VIDEO_WIDTH = 1920

VIDEO_LIMITS: dict[PostType, VideoLimits] = {
    PostType.REELS: VideoLimits(
        max_bytes=300 * 1024 * 1024,
        min_seconds=3,
        max_seconds=15 * 60,
        min_aspect=0.01,
        max_aspect=10.0,
        aspect_text="0.01:1 to 10:1 (9:16 recommended)",
    ),
    PostType.STORIES: VideoLimits(
        max_bytes=100 * 1024 * 1024,
        min_seconds=3,
        max_seconds=60,
        min_aspect=0.1,
        max_aspect=10.0,
        aspect_text="0.1:1 to 10:1 (9:16 recommended)",
    ),
    # No current spec for carousel video items: the legacy feed-video limits are the conservative choice.
    PostType.CAROUSEL: VideoLimits(
        max_bytes=100 * 1024 * 1024,
        min_seconds=3,
        max_seconds=60,
        min_aspect=4 / 5,
        max_aspect=16 / 9,
        aspect_text="4:5 (portrait) to 16:9 (landscape)",
    ),
}


class MediaRejected(ValueError):
    """The media can never be published as it is; ``code`` is stable, ``message`` tells the user what to change."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int


@dataclass(frozen=True)
class Rendition:
    data: bytes
    width: int
    height: int
    content_type: str = "image/jpeg"


def inspect_image(data: bytes) -> ImageInfo:
    """Identify an image from its bytes (never from a declared type) without decoding its pixels."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format, (width, height) = image.format or "", image.size
    except (UnidentifiedImageError, OSError) as error:
        raise MediaRejected(
            "unsupported_media", "the file is not an image Instagram can use (JPEG, PNG or WebP)"
        ) from error
    if image_format not in UPLOADABLE_IMAGE_FORMATS:
        raise MediaRejected(
            "unsupported_image_format",
            f"{image_format or 'this'} images are not supported: use JPEG, PNG or WebP",
        )
    if width * height > MAX_PIXELS:
        raise MediaRejected(
            "image_too_many_pixels",
            f"the image is {width}x{height}, over {MAX_PIXELS // 1_000_000} megapixels",
        )
    return ImageInfo(format=image_format, width=width, height=height)


def check_aspect_ratio(width: int, height: int, post_type: PostType) -> None:
    # Stories have a recommended 9:16 but no hard ratio; feed images and carousel items must fit 4:5..1.91:1.
    if post_type is PostType.STORIES:
        return
    ratio = width / height
    if not MIN_ASPECT_RATIO <= ratio <= MAX_ASPECT_RATIO:
        raise MediaRejected(
            "image_aspect_ratio",
            f"the image is {width}x{height} (aspect ratio {ratio:.2f}:1); Instagram accepts 0.80:1 (4:5 portrait) "
            f"to 1.91:1 (landscape): crop it",
        )


def render_image(data: bytes) -> Rendition:
    """The JPEG Instagram will fetch: orientation applied, RGB, width within 320..1440, at most 8 MB."""
    inspect_image(data)
    with Image.open(io.BytesIO(data)) as original:
        image = ImageOps.exif_transpose(original)
        image = image.convert("RGB")  # drops alpha and converts palette/CMYK; Instagram wants sRGB
        width, height = image.size
        target_width = min(max(width, MIN_WIDTH), MAX_WIDTH)
        if target_width != width:
            image = image.resize(
                (target_width, max(1, round(height * target_width / width))), Image.Resampling.LANCZOS
            )
        for quality in _JPEG_QUALITY_STEPS:
            out = io.BytesIO()
            image.save(out, format="JPEG", quality=quality, optimize=True)
            if out.tell() <= IMAGE_MAX_BYTES:
                return Rendition(data=out.getvalue(), width=image.width, height=image.height)
    raise MediaRejected(
        "image_too_large", "the image stays over Instagram's 8 MB limit even after compression"
    )


def sniff_video(head: bytes) -> str | None:
    """'video/mp4' or 'video/quicktime' from an ISO base media file header, or None if it is neither."""
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    return "video/quicktime" if head[8:12] == b"qt  " else "video/mp4"


@dataclass(frozen=True)
class VideoFacts:
    """What the upload's probe measured (chronogram.video_probe); None where it was not measured (videos uploaded
    before probing), and then that rule is left to Instagram."""

    size_bytes: int
    duration_ms: int | None = None
    width: int | None = None
    height: int | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    frame_rate: float | None = None


def video_problems(video: VideoFacts, post_type: PostType) -> list[MediaRejected]:
    """Every rule of ``post_type`` the video breaks, each with a stable code and a message saying what to change."""
    limits = VIDEO_LIMITS.get(post_type)
    if limits is None:
        return [MediaRejected("video_not_allowed", f"a {post_type.value} post cannot contain a video")]
    kind = f"{post_type.value} videos"
    found: list[MediaRejected] = []
    if video.size_bytes > limits.max_bytes:
        found.append(
            MediaRejected(
                "video_too_large",
                f"the video is {video.size_bytes / 1024 / 1024:.0f} MB; {kind} may be at most "
                f"{limits.max_bytes // 1024 // 1024} MB",
            )
        )
    if (
        video.duration_ms is not None
        and not limits.min_seconds <= video.duration_ms / 1000 <= limits.max_seconds
    ):
        found.append(
            MediaRejected(
                "video_duration",
                f"the video lasts {video.duration_ms / 1000:.1f} s; {kind} must last "
                f"{limits.min_seconds:g} to {limits.max_seconds:g} s",
            )
        )
    if video.video_codec is not None and video.video_codec not in VIDEO_CODECS:
        found.append(
            MediaRejected(
                "video_codec",
                f"the video is encoded with {video.video_codec}; Instagram takes H.264 or HEVC: re-encode it",
            )
        )
    if video.audio_codec is not None and video.audio_codec not in AUDIO_CODECS:
        found.append(
            MediaRejected(
                "video_audio_codec",
                f"the video's sound is encoded with {video.audio_codec}; Instagram takes AAC: re-encode it",
            )
        )
    if video.frame_rate is not None and not MIN_FRAME_RATE <= video.frame_rate <= MAX_FRAME_RATE:
        found.append(
            MediaRejected(
                "video_frame_rate",
                f"the video has {video.frame_rate:g} frames per second; Instagram takes {MIN_FRAME_RATE:g} to "
                f"{MAX_FRAME_RATE:g}",
            )
        )
    if video.width is not None and video.height is not None:
        if video.width > MAX_VIDEO_WIDTH:
            found.append(
                MediaRejected(
                    "video_too_wide",
                    f"the video is {video.width}x{video.height}; Instagram takes at most {MAX_VIDEO_WIDTH} "
                    "pixels across: scale it down",
                )
            )
        ratio = video.width / video.height
        if not limits.min_aspect - 1e-3 <= ratio <= limits.max_aspect + 1e-3:
            found.append(
                MediaRejected(
                    "video_aspect_ratio",
                    f"the video is {video.width}x{video.height} (aspect ratio {ratio:.2f}:1); {kind} must be "
                    f"{limits.aspect_text}: crop it",
                )
            )
    return found


def check_video(video: VideoFacts, post_type: PostType) -> None:
    """Raise the first of ``video_problems``, if any."""
    problems = video_problems(video, post_type)
    if problems:
        raise problems[0]


def thumb_offset_problem(thumb_offset_ms: int, duration_ms: int | None) -> MediaRejected | None:
    """Meta's rule for a reel's thumb_offset (error 2207057): at least 0 and less than the video's duration."""
    if duration_ms is None or 0 <= thumb_offset_ms < duration_ms:
        return None
    return MediaRejected(
        "thumb_offset_beyond_duration",
        f"thumb_offset_ms is {thumb_offset_ms} but the video lasts {duration_ms} ms: choose a frame within it",
    )
