"""The HTTP client the worker and the API call Instagram with: no import is attempted per request.

httpcore asks sniffio which event loop runs on every lock and event it creates. Without sniffio installed, each
ask is a failed import, which Python does not cache: a search of sys.path on disk, a quarter of a request's CPU.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

import httpx

_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class _ImportRecorder(importlib.abc.MetaPathFinder):
    """First on sys.meta_path: sees every import that sys.modules did not answer, finds nothing itself."""

    def __init__(self) -> None:
        self.searched: list[str] = []

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        self.searched.append(fullname)
        return None


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(_RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionResetError):
        pass
    writer.close()


async def test_requests_attempt_no_imports() -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    recorder = _ImportRecorder()
    async with server, httpx.AsyncClient() as http:
        (await http.get(url)).raise_for_status()  # the first request may import what it needs once
        sys.meta_path.insert(0, recorder)
        try:
            for _ in range(20):
                (await http.get(url)).raise_for_status()
        finally:
            sys.meta_path.remove(recorder)
    assert recorder.searched == []
