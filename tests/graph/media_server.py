"""Test media (Pillow-made JPEGs, hand-built MP4 boxes) served over real HTTP for the sandbox to download."""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

MIB = 1024 * 1024


def jpeg(width: int, height: int, *, color: tuple[int, int, int] = (180, 40, 90)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "JPEG", quality=85)
    return out.getvalue()


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (20, 120, 200)).save(out, "PNG")
    return out.getvalue()


def oversized_jpeg() -> bytes:
    # A valid JPEG padded after its end marker: decoders ignore the tail, size checks do not.
    image = jpeg(1080, 1080)
    return image + b"\0" * (8 * MIB + 1 - len(image))


def _box(kind: bytes, body: bytes) -> bytes:
    return (8 + len(body)).to_bytes(4, "big") + kind + body


def mp4(payload: int = 4096, *, brand: bytes = b"isom") -> bytes:
    """A structurally valid ISO-BMFF file: ftyp, moov/mvhd (5 s at 1 kHz), mdat."""
    ftyp = _box(b"ftyp", brand + (512).to_bytes(4, "big") + b"isomiso2avc1mp41")
    mvhd_body = (
        bytes(4)  # version 0, flags
        + bytes(8)  # creation and modification times
        + (1000).to_bytes(4, "big")  # timescale
        + (5000).to_bytes(4, "big")  # duration
        + (0x00010000).to_bytes(4, "big")  # rate 1.0
        + (0x0100).to_bytes(2, "big")  # volume 1.0
        + bytes(10)
        + bytes(36)  # matrix (unchecked)
        + bytes(24)
        + (2).to_bytes(4, "big")  # next track id
    )
    moov = _box(b"moov", _box(b"mvhd", mvhd_body))
    return ftyp + moov + _box(b"mdat", bytes(payload))


@dataclass
class _Asset:
    body: bytes
    content_type: str
    delay: float = 0.0


class MediaServer:
    """A threaded static server; ``put`` returns the URL of the new file."""

    def __init__(self) -> None:
        self._assets: dict[str, _Asset] = {}
        self.requests: list[str] = []
        assets, requests = self._assets, self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                asset = assets.get(self.path)
                if asset is None:
                    self.send_error(404)
                    return
                if asset.delay:
                    time.sleep(asset.delay)
                self.send_response(200)
                self.send_header("Content-Type", asset.content_type)
                self.send_header("Content-Length", str(len(asset.body)))
                self.end_headers()
                try:
                    self.wfile.write(asset.body)
                except (BrokenPipeError, ConnectionResetError):
                    # The sandbox aborts oversized or slow downloads; that is the point of those tests.
                    return

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="media-server", daemon=True)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def put(self, name: str, body: bytes, content_type: str, *, delay: float = 0.0) -> str:
        path = "/" + name
        self._assets[path] = _Asset(body, content_type, delay)
        return self.base_url + path

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"


@dataclass(frozen=True)
class StandardMedia:
    """URLs of the standard files; every test can rely on them."""

    square: str
    portrait: str  # 4:5, the narrowest feed ratio
    landscape: str  # 1.91:1, the widest
    tall: str  # 9:16: fine for stories, refused in the feed
    wide: str  # 2:1, refused
    tiny: str  # 200 px wide: scaled up, not refused
    huge_width: str  # 2000 px wide: scaled down
    png: str
    oversized: str
    video: str
    mov: str
    html: str
    missing: str
    slow_image: str


def publish_standard_media(server: MediaServer) -> StandardMedia:
    return StandardMedia(
        square=server.put("square.jpg", jpeg(1080, 1080), "image/jpeg"),
        portrait=server.put("portrait.jpg", jpeg(1080, 1350), "image/jpeg"),
        landscape=server.put("landscape.jpg", jpeg(1910, 1000), "image/jpeg"),
        tall=server.put("tall.jpg", jpeg(1080, 1920), "image/jpeg"),
        wide=server.put("wide.jpg", jpeg(2000, 1000), "image/jpeg"),
        tiny=server.put("tiny.jpg", jpeg(200, 200), "image/jpeg"),
        huge_width=server.put("huge-width.jpg", jpeg(2000, 2000), "image/jpeg"),
        png=server.put("square.png", png(1080, 1080), "image/png"),
        oversized=server.put("oversized.jpg", oversized_jpeg(), "image/jpeg"),
        video=server.put("reel.mp4", mp4(), "video/mp4"),
        mov=server.put("clip.mov", mp4(brand=b"qt  "), "video/quicktime"),
        html=server.put("page.html", b"<html><body>not media</body></html>", "text/html"),
        missing=server.url("does-not-exist.jpg"),
        slow_image=server.put("slow.jpg", jpeg(1080, 1080), "image/jpeg", delay=1.0),
    )
