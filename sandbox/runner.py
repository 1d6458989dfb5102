"""Run the sandbox inside the current process, on a free port, for tests and benchmarks.

with SandboxServer(SandboxConfig(image_processing_seconds=0)) as sandbox:
    ... sandbox.base_url ...
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn

from sandbox.app import create_app
from sandbox.config import SandboxConfig

KEEP_ALIVE_SECONDS = 75
"""How long the sandbox keeps an idle connection open. Uvicorn's default (5 s) equals httpx's default keep-alive
expiry, so a client could send on a connection in the instant the sandbox closes it and read a reset (httpx
``ReadError``), most often when the sandbox's event loop is starved under a test's or a benchmark's load. Any
client's expiry is shorter than this, so the client always lets go first. The product's own transport does not rely
on it: it drops connections idle for 2 s (chronogram/http_transport.py)."""


class SandboxServer:
    """Uvicorn on its own thread and event loop; ``base_url`` is valid between start() and stop()."""

    def __init__(
        self, config: SandboxConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.app = create_app(config)
        self._host = host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    def start(self, timeout: float = 10.0) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="graph-sandbox", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox did not start")
            time.sleep(0.01)
        self.base_url = f"http://{self._host}:{port}"
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
