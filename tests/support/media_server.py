"""Test media (from tests.support.media) served over real HTTP for the sandbox to download."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.media import jpeg, png
from tests.support.media import video as encoded_video

MIB = 1024 * 1024
COLOR = (180, 40, 90)  # of the standard JPEGs


def oversized_jpeg() -> bytes:
    # A valid JPEG padded after its end marker: decoders ignore the tail, size checks do not.
    image = jpeg(1080, 1080, color=COLOR)
    return image + b"\0" * (8 * MIB + 1 - len(image))


def video(container: str = "mp4") -> bytes:
    """A real 5-second square H.264 video (MP4, or MOV with ``container="mov"``): within the specs of reels,
    video stories and carousel video items alike."""
    return encoded_video(5.0, width=240, height=240, container=container)


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
    def image(name: str, width: int, height: int, *, delay: float = 0.0) -> str:
        return server.put(name, jpeg(width, height, color=COLOR), "image/jpeg", delay=delay)

    return StandardMedia(
        square=image("square.jpg", 1080, 1080),
        portrait=image("portrait.jpg", 1080, 1350),
        landscape=image("landscape.jpg", 1910, 1000),
        tall=image("tall.jpg", 1080, 1920),
        wide=image("wide.jpg", 2000, 1000),
        tiny=image("tiny.jpg", 200, 200),
        huge_width=image("huge-width.jpg", 2000, 2000),
        png=server.put("square.png", png(1080, 1080, mode="RGB", color=(20, 120, 200)), "image/png"),
        oversized=server.put("oversized.jpg", oversized_jpeg(), "image/jpeg"),
        video=server.put("reel.mp4", video(), "video/mp4"),
        mov=server.put("clip.mov", video(container="mov"), "video/quicktime"),
        html=server.put("page.html", b"<html><body>not media</body></html>", "text/html"),
        missing=server.url("does-not-exist.jpg"),
        slow_image=image("slow.jpg", 1080, 1080, delay=1.0),
    )
