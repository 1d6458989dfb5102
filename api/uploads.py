"""Receiving one uploaded file: streamed to a temporary file, hashed and size-limited as it arrives, then judged by
its content (never by the declared type) against Instagram's media rules.

The multipart body is parsed here rather than by the framework, because the framework spools a whole upload to
disk before any code sees it: a 5 GB "image" would be written out in full before being refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import tempfile
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import BinaryIO, cast

from fastapi import Request
from PIL import Image, UnidentifiedImageError
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from api.errors import ApiError
from chronogram.contracts import MediaKind
from chronogram.media_rules import MAX_PIXELS, MediaRejected, inspect_image, sniff_video
from chronogram.previews import image_preview, preview_of
from chronogram.video_probe import ProbeBusy, probe_video

FILE_FIELD = "file"
_SNIFF_BYTES = 16
# At most this much of an upload waits in memory before it is written to its temporary file.
_WRITE_BATCH_BYTES = 256 * 1024
_IMAGE_TYPES = {"JPEG": ("image/jpeg", "jpg"), "PNG": ("image/png", "png"), "WEBP": ("image/webp", "webp")}
_VIDEO_EXTENSIONS = {"video/mp4": "mp4", "video/quicktime": "mov"}
_NEITHER = "the file is neither an image (JPEG, PNG or WebP) nor a video (MP4 or MOV)"
# A file the probe could not read as a video at all: its type is not one we take (415), rather than a bad value.
_UNSUPPORTED_VIDEO_CODES = frozenset(
    {"video_undecodable", "unsupported_video_format", "video_without_picture"}
)
# EXIF orientations that turn the picture a quarter: width and height swap on screen.
_ROTATED_ORIENTATIONS = {5, 6, 7, 8}


@dataclass
class ReceivedFile:
    file: BinaryIO
    size: int
    sha256: str
    kind: MediaKind
    head: bytes


@dataclass(frozen=True)
class Examined:
    content_type: str
    extension: str
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None
    rotation: int | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    frame_rate: float | None = None
    has_audio: bool | None = None
    # The small JPEG stored beside the original: a video's thumbnail (its first frame), an image's preview.
    preview: bytes | None = None


@dataclass
class _Part:
    name: str = ""
    is_file: bool = False
    disposition: bytes = b""
    header_name: bytes = b""
    header_value: bytes = b""


@dataclass
class _Receiver:
    """python-multipart callbacks; they run inside ``parser.write`` and only buffer, the writes happen after."""

    max_image_bytes: int
    max_video_bytes: int
    sink: BinaryIO
    part: _Part = field(default_factory=_Part)
    seen_file: bool = False
    receiving: bool = False
    size: int = 0
    head: bytes = b""
    kind: MediaKind | None = None
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)
    pending: list[bytes] = field(default_factory=list)
    pending_bytes: int = 0

    def on_part_begin(self) -> None:
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.part.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.part.header_value += data[start:end]

    def on_header_end(self) -> None:
        if self.part.header_name.lower() == b"content-disposition":
            self.part.disposition = self.part.header_value
        self.part.header_name = self.part.header_value = b""

    def on_headers_finished(self) -> None:
        _disposition, options = parse_options_header(self.part.disposition)
        self.part.name = options.get(b"name", b"").decode("utf-8", "replace")
        self.part.is_file = b"filename" in options
        if self.part.name == FILE_FIELD:
            if self.seen_file:
                raise ApiError(422, "too_many_files", "send exactly one file per upload", field=FILE_FIELD)
            self.seen_file = True
            self.receiving = True

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if not self.receiving:
            return  # other form fields carry nothing we use
        chunk = data[start:end]
        if self.kind is None:
            self.head += chunk[: _SNIFF_BYTES - len(self.head)]
            if len(self.head) >= _SNIFF_BYTES:
                self._decide_kind()
        self.size += len(chunk)
        if self.kind is not None:
            self._check_size()
        self.digest.update(chunk)
        self.pending.append(chunk)
        self.pending_bytes += len(chunk)

    def on_part_end(self) -> None:
        if self.receiving:
            if self.kind is None:
                self._decide_kind()
            self._check_size()
            self.receiving = False

    def _decide_kind(self) -> None:
        # The limit depends on what the file is, which its first bytes tell; Pillow has the last word later.
        self.kind = MediaKind.VIDEO if sniff_video(self.head) else MediaKind.IMAGE

    def _check_size(self) -> None:
        assert self.kind is not None
        _check_size(
            self.kind, self.size, max_image_bytes=self.max_image_bytes, max_video_bytes=self.max_video_bytes
        )

    def flush(self) -> None:
        if self.pending:
            self.sink.write(b"".join(self.pending))
            self.pending.clear()
            self.pending_bytes = 0


async def receive_upload(
    request: Request, *, max_image_bytes: int, max_video_bytes: int, idle_timeout: float
) -> ReceivedFile:
    """Stream the ``file`` part of a multipart/form-data request into an anonymous temporary file.

    Nothing shared is held while the body arrives: no database connection, and a thread only for each write to
    the file. A client that sends nothing for ``idle_timeout`` seconds is answered 408 ``upload_timed_out``."""
    media_type, params = parse_options_header(request.headers.get("content-type", ""))
    if media_type != b"multipart/form-data":
        raise ApiError(
            415,
            "unsupported_content_type",
            "upload the file as multipart/form-data with a part named 'file'",
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError(400, "malformed_multipart", "the multipart Content-Type has no boundary")

    sink = cast(BinaryIO, tempfile.TemporaryFile(prefix="chronogram-upload-"))
    receiver = _Receiver(max_image_bytes=max_image_bytes, max_video_bytes=max_video_bytes, sink=sink)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": receiver.on_part_begin,
            "on_part_data": receiver.on_part_data,
            "on_part_end": receiver.on_part_end,
            "on_header_field": receiver.on_header_field,
            "on_header_value": receiver.on_header_value,
            "on_header_end": receiver.on_header_end,
            "on_headers_finished": receiver.on_headers_finished,
        },
    )
    try:
        async for chunk in _arriving(request, idle_timeout):
            parser.write(chunk)
            # Written in batches: a slow client's chunks (a few hundred bytes each) cost no thread until a
            # batch is full, and a fast client's cost one thread hop per batch.
            if receiver.pending_bytes >= _WRITE_BATCH_BYTES:
                await run_in_threadpool(receiver.flush)
        parser.finalize()
        await run_in_threadpool(receiver.flush)
    except ClientDisconnect:
        sink.close()
        # Nobody is left to read it; the error ends the request, and with it the upload's slot.
        raise ApiError(
            400, "upload_interrupted", "the client disconnected before the upload was complete"
        ) from None
    except FormParserError:
        sink.close()
        raise ApiError(400, "malformed_multipart", "the multipart body could not be parsed") from None
    except BaseException:
        sink.close()
        raise
    if not receiver.seen_file:
        sink.close()
        raise ApiError(422, "validation_error", "a part named 'file' is required", field=FILE_FIELD)
    if receiver.size == 0:
        sink.close()
        raise ApiError(422, "empty_file", "the uploaded file is empty", field=FILE_FIELD)
    assert receiver.kind is not None
    sink.seek(0)
    return ReceivedFile(
        file=sink,
        size=receiver.size,
        sha256=receiver.digest.hexdigest(),
        kind=receiver.kind,
        head=receiver.head,
    )


async def _arriving(request: Request, idle_timeout: float) -> AsyncIterator[bytes]:
    chunks = request.stream().__aiter__()
    while True:
        try:
            async with asyncio.timeout(idle_timeout):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise ApiError(
                408,
                "upload_timed_out",
                f"nothing of the upload arrived for {idle_timeout:g} seconds",
                headers={"Connection": "close"},
            ) from None
        yield chunk


def received_bytes(data: bytes, *, max_image_bytes: int, max_video_bytes: int) -> ReceivedFile:
    """A file that is already in memory (the command line reads it from disk), held to an upload's limits."""
    if not data:
        raise ApiError(422, "empty_file", "the uploaded file is empty", field=FILE_FIELD)
    head = data[:_SNIFF_BYTES]
    kind = MediaKind.VIDEO if sniff_video(head) else MediaKind.IMAGE
    _check_size(kind, len(data), max_image_bytes=max_image_bytes, max_video_bytes=max_video_bytes)
    return ReceivedFile(
        file=io.BytesIO(data), size=len(data), sha256=hashlib.sha256(data).hexdigest(), kind=kind, head=head
    )


def _check_size(kind: MediaKind, size: int, *, max_image_bytes: int, max_video_bytes: int) -> None:
    limit = max_video_bytes if kind is MediaKind.VIDEO else max_image_bytes
    if size > limit:
        what = "videos" if kind is MediaKind.VIDEO else "images"
        raise ApiError(
            413,
            "media_too_large",
            f"{what} may be at most {limit // (1024 * 1024)} MB ({limit} bytes)",
            field=FILE_FIELD,
        )


def examine(received: ReceivedFile) -> Examined:
    """What the file is, from its content; raises ApiError for anything Instagram could never publish.

    Blocking (reads the file, decodes images): call it in a thread.
    """
    if received.kind is MediaKind.VIDEO:
        return _examine_video(received)
    received.file.seek(0)
    data = received.file.read()
    received.file.seek(0)
    try:
        image_format, width, height, preview = _examine_image(data)
    except MediaRejected as rejected:
        status = 415 if rejected.code in ("unsupported_media", "unsupported_image_format") else 422
        # Neither a video (sniffed first) nor an image: the answer names every kind a file may be.
        message = _NEITHER if rejected.code == "unsupported_media" else rejected.message
        raise ApiError(status, rejected.code, message, field=FILE_FIELD) from None
    content_type, extension = _IMAGE_TYPES[image_format]
    return Examined(
        content_type=content_type,
        extension=extension,
        width=width,
        height=height,
        preview=preview,
    )


def _examine_video(received: ReceivedFile) -> Examined:
    """Probe the video in a bounded child process (chronogram.video_probe): what it measures is stored, and a
    file that FFmpeg cannot decode is refused now rather than by Instagram minutes before its time."""
    content_type = sniff_video(received.head)
    assert content_type is not None
    try:
        probe = probe_video(received.file)
    except MediaRejected as rejected:
        status = 415 if rejected.code in _UNSUPPORTED_VIDEO_CODES else 422
        raise ApiError(status, rejected.code, rejected.message, field=FILE_FIELD) from None
    except ProbeBusy:
        raise ApiError(
            503,
            "upload_capacity_reached",
            "the server is checking as many videos as it can at once; send this one again shortly",
            headers={"Retry-After": "10"},
        ) from None
    return Examined(
        content_type=content_type,
        extension=_VIDEO_EXTENSIONS[content_type],
        width=probe.width,
        height=probe.height,
        duration_ms=probe.duration_ms,
        rotation=probe.rotation,
        video_codec=probe.video_codec,
        audio_codec=probe.audio_codec,
        frame_rate=probe.frame_rate,
        has_audio=probe.has_audio,
        preview=probe.thumbnail,
    )


def _examine_image(data: bytes) -> tuple[str, int, int, bytes]:
    with warnings.catch_warnings():
        # Pillow only warns between its own limit and twice that; a bomb is refused either way.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            info = inspect_image(data)
            width, height = _displayed_size(data, info.width, info.height)
            preview = _decode(data, info.format)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise MediaRejected(
                "image_too_many_pixels", f"the image has more than {MAX_PIXELS // 1_000_000} megapixels"
            ) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            if isinstance(error, MediaRejected):
                raise
            raise MediaRejected(
                "image_corrupt", "the image is damaged or truncated and cannot be decoded"
            ) from None
    return info.format, width, height, preview


def _displayed_size(data: bytes, width: int, height: int) -> tuple[int, int]:
    """Width and height as the picture will be shown: the rendition applies EXIF orientation before Instagram's
    aspect-ratio rule is checked, so the rule must be checked on the same numbers."""
    with Image.open(io.BytesIO(data)) as image:
        orientation = image.getexif().get(0x0112)
    return (height, width) if orientation in _ROTATED_ORIENTATIONS else (width, height)


def _decode(data: bytes, image_format: str) -> bytes:
    """Decode the image once, so a truncated or corrupt file is refused now rather than at publish time, and
    return its preview. JPEGs decode at an eighth of their size (enough to reach the end of the data) and get
    their preview from a draft of their own; other formats' previews come from this very decode. The pixel cap
    bounds the rest."""
    with Image.open(io.BytesIO(data)) as image:
        if image_format == "JPEG":
            image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
        image.load()
        if image_format != "JPEG":
            return preview_of(image)
    return image_preview(data)
