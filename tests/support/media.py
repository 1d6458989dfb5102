"""Media files made in memory: JPEG and PNG by Pillow, MP4 as hand-built ISO base media boxes.

Each maker returns the file's bytes; Upload bundles them with what the API would have measured on upload, for
callers that put media into storage and the database themselves."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

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
    def mp4(cls, duration_ms: int = 8000) -> Upload:
        """The duration is what the upload recorded; the file itself declares none."""
        return cls(mp4(), "video/mp4", duration_ms=duration_ms)
