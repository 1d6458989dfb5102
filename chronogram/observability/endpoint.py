"""A tiny HTTP/1.1 server for a process's operational endpoints (the worker's /metrics, /healthz, /readyz).

Only GET, no bodies in, ``Connection: close``: what Prometheus and an orchestrator's probes send. It runs on the
process's event loop, so its handlers must not block (the metrics are rendered in a thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus

__all__ = ["Reply", "serve"]

log = logging.getLogger("chronogram.endpoint")


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


Handler = Callable[[], Awaitable[Reply]]

_MAX_REQUEST_HEAD = 8192
_READ_TIMEOUT_SECONDS = 5.0


@asynccontextmanager
async def serve(host: str, port: int, routes: Mapping[str, Handler]) -> AsyncIterator[int]:
    """Serve ``routes`` (path -> handler) on ``host:port`` until the block ends; yields the bound port (``port``
    0 picks a free one)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT_SECONDS)
            method, target, *_ = head[:_MAX_REQUEST_HEAD].decode("latin-1").split(" ", 2)
            path = target.split("?", 1)[0]
            handler = routes.get(path)
            if method not in ("GET", "HEAD"):
                reply = Reply(405, b"method not allowed\n")
            elif handler is None:
                reply = Reply(404, b"not found\n")
            else:
                reply = await handler()
            reason = HTTPStatus(reply.status).phrase
            writer.write(
                f"HTTP/1.1 {reply.status} {reason}\r\nContent-Type: {reply.content_type}\r\n"
                f"Content-Length: {len(reply.body)}\r\nConnection: close\r\n\r\n".encode("latin-1")
            )
            if method != "HEAD":
                writer.write(reply.body)
            await writer.drain()
        except (
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            TimeoutError,
            ValueError,
            ConnectionError,
        ):
            pass  # a probe that hung up or sent garbage gets nothing
        except Exception:
            log.exception("operational endpoint failed")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, host, port, limit=_MAX_REQUEST_HEAD)
    bound = int(server.sockets[0].getsockname()[1])
    try:
        yield bound
    finally:
        server.close()
        await server.wait_closed()
