"""An upload sent at a chosen pace over a socket of its own, as a client on a poor connection sends it: the
multipart body goes out a chunk at a time while the answer is read at the same time, so that an answer given
before the body is complete (a 429, say) is seen at once and ends the sending.

httpx cannot do this: it reads the answer only once it has sent the whole body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Answer:
    status: int  # 0: no answer (abandoned by the caller, or the connection was lost first)
    headers: dict[str, str]
    body: bytes
    seconds: float  # from the first byte sent to the end of the answer (or to the abandon)
    sent_bytes: int  # of the body, when the answer came

    def json(self) -> Any:
        return json.loads(self.body)


def multipart(
    data: bytes, *, filename: str = "photo.jpg", content_type: str = "image/jpeg"
) -> tuple[bytes, str]:
    """The body of a one-file upload in the part ``file``, and its Content-Type."""
    boundary = uuid.uuid4().hex
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def upload(
    base_url: str,
    key: str,
    data: bytes,
    *,
    bytes_per_second: float | None = None,
    chunk_bytes: int = 512,
    abandon: asyncio.Event | None = None,
) -> Answer:
    """POST /v1/media with ``data`` as the file, sent at ``bytes_per_second`` (None: as fast as the socket
    takes it). Setting ``abandon`` closes the connection at once, as a client that gives up (or loses its
    network) would, and the answer has status 0."""
    url = urlsplit(base_url)
    assert url.hostname is not None and url.port is not None
    body, content_type = multipart(data)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    began = time.perf_counter()
    writer.write(
        (
            f"POST /v1/media HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
    )
    answer = asyncio.create_task(_read_answer(reader))
    gave_up = asyncio.create_task(abandon.wait()) if abandon is not None else None
    waits = {answer} | ({gave_up} if gave_up is not None else set())
    interval = chunk_bytes / bytes_per_second if bytes_per_second else 0.0
    sent = 0
    try:
        while sent < len(body) and not any(task.done() for task in waits):
            piece = body[sent : sent + (chunk_bytes if interval else len(body))]
            writer.write(piece)
            await writer.drain()
            sent += len(piece)
            if interval:
                await asyncio.wait(waits, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
        if gave_up is None or not gave_up.done():
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    except ConnectionError:
        pass  # the server closed the connection after answering: the answer is still read below
    try:
        if gave_up is not None and gave_up.done() and not answer.done():
            answer.cancel()
            return Answer(0, {}, b"", time.perf_counter() - began, sent)
        try:
            status, headers, content = await answer
        except (ConnectionError, asyncio.IncompleteReadError):
            return Answer(0, {}, b"", time.perf_counter() - began, sent)
        return Answer(status, headers, content, time.perf_counter() - began, sent)
    finally:
        if gave_up is not None:
            gave_up.cancel()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    status_line = await reader.readuntil(b"\r\n")
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        return status, headers, await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        content = b""
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            content += await reader.readexactly(size)
            await reader.readuntil(b"\r\n")
        return status, headers, content
    return status, headers, await reader.read()
