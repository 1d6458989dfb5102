"""Media files made in memory: JPEG and PNG by Pillow, real MP4 and MOV videos encoded by PyAV, and MP4 headers
as hand-built ISO base media boxes (a file that looks like a video and decodes to nothing).

Each maker returns the file's bytes; Upload bundles them with what the API would have measured on upload, for
callers that put media into storage and the database themselves."""

from __future__ import annotations

import functools
import io
import os
import tempfile
from dataclasses import dataclass
from typing import Any, cast

import av
from PIL import Image

JPEG_COLOR = (30, 120, 200)
PNG_COLOR = (10, 200, 90, 255)


def jpeg(
    width: int = 1080,
    height: int = 1080,
    color: tuple[int, int, int] = JPEG_COLOR,
    *,
    exif: bytes | None = None,
) -> bytes:
    """A plain-coloured baseline JPEG at quality 85; ``exif``, when given, is saved in its APP1 segment."""
    options: dict[str, Any] = {} if exif is None else {"exif": exif}
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="JPEG", quality=85, **options)
    return out.getvalue()


def png(
    width: int = 1080,
    height: int = 1080,
    *,
    mode: str = "RGBA",
    color: int | tuple[int, ...] = PNG_COLOR,
) -> bytes:
    """A plain-coloured PNG in Pillow's ``mode`` ("RGBA", "RGB", "1"…), ``color`` given in that mode."""
    out = io.BytesIO()
    Image.new(mode, (width, height), color).save(out, format="PNG")
    return out.getvalue()


def _box(kind: bytes, body: bytes) -> bytes:
    return (8 + len(body)).to_bytes(4, "big") + kind + body


def _mvhd(duration_ms: int) -> bytes:
    """A version-0 movie header: timescale 1 kHz, the duration in it, rate and volume 1.0, the next track id 2."""
    return _box(
        b"mvhd",
        bytes(4)  # version 0, flags
        + bytes(8)  # creation and modification times
        + (1000).to_bytes(4, "big")  # timescale
        + duration_ms.to_bytes(4, "big")  # duration
        + (0x00010000).to_bytes(4, "big")  # rate 1.0
        + (0x0100).to_bytes(2, "big")  # volume 1.0
        + bytes(10)
        + bytes(36)  # matrix (unchecked)
        + bytes(24)
        + (2).to_bytes(4, "big"),  # next track id
    )


def mp4(
    padding: int = 4096,
    *,
    brand: bytes = b"isom",
    compatible: bytes = b"isomiso2mp41",
    duration_ms: int | None = None,
) -> bytes:
    """An ISO base media file: what our sniffing and the sandbox take for MP4 (for QuickTime with brand b"qt  ").

    ftyp (major ``brand``, minor version 512, the ``compatible`` brands), moov, then an mdat of ``padding`` zero
    bytes. With ``duration_ms`` the moov holds a movie header declaring that duration; without, 64 zero bytes.
    """
    ftyp = _box(b"ftyp", brand + (512).to_bytes(4, "big") + compatible)
    moov = _box(b"moov", b"\x00" * 64 if duration_ms is None else _mvhd(duration_ms))
    return ftyp + moov + _box(b"mdat", b"\x00" * padding)


VIDEO_COLOR = (220, 140, 30)


@functools.lru_cache(maxsize=64)
def video(
    seconds: float = 4.0,
    *,
    width: int = 180,
    height: int = 320,
    fps: int = 30,
    codec: str = "libx264",
    container: str = "mp4",
    audio: bool = True,
    rotation: int = 0,
    color: tuple[int, int, int] = VIDEO_COLOR,
) -> bytes:
    """A real video encoded by PyAV: ``seconds`` of frames at ``fps``, plain ``color`` except for a white bar that
    moves right one pixel per frame, AAC silence when ``audio``. ``container`` "mp4" or "mov" (QuickTime);
    ``codec`` "libx264", "libx265" or "mpeg4" (MPEG-4 Part 2, which Instagram refuses); ``rotation`` (90, 180,
    270) is written as the display matrix a phone writes. Cached: the same arguments return the same bytes."""
    frames = max(1, round(seconds * fps))
    with tempfile.TemporaryDirectory(prefix="chronogram-video-") as folder:
        path = os.path.join(folder, f"clip.{container}")
        _encode(path, container, frames, width, height, fps, codec, audio, rotation, color, seconds)
        with open(path, "rb") as made:
            return made.read()


def _encode(
    path: str,
    container: str,
    frames: int,
    width: int,
    height: int,
    fps: int,
    codec: str,
    audio: bool,
    rotation: int,
    color: tuple[int, int, int],
    seconds: float,
) -> None:
    # faststart (a second pass over a real file): the moov box, the index, before the pictures, as Instagram asks.
    with av.open(path, "w", format=container, options={"movflags": "faststart"}) as muxer:
        stream = cast(av.VideoStream, muxer.add_stream(codec, rate=fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # The fastest presets: tests make videos while a post's publish time approaches.
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        elif codec == "libx265":
            stream.options = {"preset": "ultrafast", "x265-params": "log-level=none"}
        if rotation:
            stream.set_display_rotation(rotation)
        sound = muxer.add_stream("aac", rate=44100, layout="mono") if audio else None
        picture = Image.new("RGB", (width, height), color)
        for index in range(frames):
            frame_picture = picture.copy()
            frame_picture.paste((255, 255, 255), (index % width, 0, index % width + 1, height))
            frame = av.VideoFrame.from_image(frame_picture)  # type: ignore[no-untyped-call]
            frame.pts = index
            muxer.mux(stream.encode(frame))
        muxer.mux(stream.encode(None))
        if sound is not None:
            samples = sound.codec_context.frame_size or 1024
            for index in range(int(seconds * 44100) // samples + 1):
                chunk = av.AudioFrame(format=sound.codec_context.format.name, layout="mono", samples=samples)
                for plane in chunk.planes:
                    plane.update(bytes(plane.buffer_size))
                chunk.sample_rate, chunk.pts = 44100, index * samples
                muxer.mux(sound.encode(chunk))
            muxer.mux(sound.encode(None))


def mov(seconds: float = 4.0, **options: Any) -> bytes:
    """A real QuickTime video (``video`` with container "mov")."""
    return video(seconds, container="mov", **options)


def broken_video() -> bytes:
    """An MP4 whose header (ftyp, moov) is intact and whose pictures (mdat) are garbage: sniffed as a video,
    decoded as nothing."""
    data = bytearray(video(4.0, audio=False))
    at = data.index(b"mdat") - 4
    size = int.from_bytes(data[at : at + 4], "big")
    data[at + 8 : at + size] = b"\xff" * (size - 8)
    return bytes(data)


@dataclass(frozen=True)
class Upload:
    """A file as the API stores it: its bytes, its content type and what was measured of it."""

    data: bytes
    content_type: str
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None

    @classmethod
    def jpeg(cls, width: int, height: int, color: tuple[int, int, int] = JPEG_COLOR) -> Upload:
        return cls(jpeg(width, height, color), "image/jpeg", width, height)

    @classmethod
    def mp4(cls, duration_ms: int = 8000, width: int = 240, height: int = 240) -> Upload:
        """A real H.264 MP4 of that duration (square: within every post type's video rules), with what the
        upload's probe measured of it."""
        return cls(
            video(duration_ms / 1000, width=width, height=height), "video/mp4", width, height, duration_ms
        )
