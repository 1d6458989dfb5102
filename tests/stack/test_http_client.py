"""The HTTP client the worker and the API call Instagram with: no import is attempted per request, and the
worker's transport of small pools serves as many requests at once as it has connections, and queues the rest
itself, in order, within their pool timeout; a connection idle for long is replaced, not reused.

httpcore asks sniffio which event loop runs on every lock and event it creates. Without sniffio installed, each
ask is a failed import, which Python does not cache: a search of sys.path on disk, a quarter of a request's CPU.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import random
import sys
from collections.abc import Awaitable, Callable, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

import httpx
import pytest

from chronogram.http_transport import KEEPALIVE_EXPIRY, ShardedTransport, _settled

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


class _Server:
    """An HTTP/1.1 server that counts its connections and can hold every answer until ``hold`` requests wait."""

    def __init__(self, hold: int = 0) -> None:
        self.connections = 0
        self.answering = 0
        self.most_at_once = 0
        self._waiting = 0
        self._hold = hold
        self._all_arrived = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                self._waiting += 1
                self.answering += 1
                self.most_at_once = max(self.most_at_once, self.answering)
                if self._waiting >= self._hold:
                    self._all_arrived.set()
                await self._all_arrived.wait()
                await asyncio.sleep(0.001)
                self.answering -= 1
                writer.write(_RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionResetError):
            pass
        writer.close()


async def _listening(
    serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> tuple[asyncio.Server, str]:
    """A local server answering with ``serve``, and its URL."""
    listener = await asyncio.start_server(serve, "127.0.0.1", 0)
    return listener, f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}/"


async def test_requests_attempt_no_imports() -> None:
    listener, url = await _listening(_Server().serve)
    recorder = _ImportRecorder()
    async with listener, httpx.AsyncClient() as http:
        (await http.get(url)).raise_for_status()  # the first request may import what it needs once
        sys.meta_path.insert(0, recorder)
        try:
            for _ in range(20):
                (await http.get(url)).raise_for_status()
        finally:
            sys.meta_path.remove(recorder)
    assert recorder.searched == []


async def test_the_sharded_transport_serves_as_many_requests_at_once_as_it_has_connections() -> None:
    # 40 connections, a pool each: each request must find a free connection, or the server, which
    # answers only once all 40 wait, would never answer.
    server = _Server(hold=40)
    listener, url = await _listening(server.serve)
    transport = ShardedTransport(connections=40)
    async with listener, httpx.AsyncClient(transport=transport) as http:
        responses = await asyncio.wait_for(asyncio.gather(*(http.get(url) for _ in range(40))), timeout=10)
        assert [response.json() for response in responses] == [{}] * 40
        assert transport.in_flight == 0
        # Kept alive: the next requests reuse the connections.
        for _ in range(20):
            (await http.get(url)).raise_for_status()
    assert server.connections == 40


async def test_the_sharded_transport_counts_out_early_closes_and_failures() -> None:
    server = _Server()
    listener = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    transport = ShardedTransport(connections=20)
    async with listener, httpx.AsyncClient(transport=transport) as http:
        async with http.stream("GET", f"http://127.0.0.1:{port}/") as response:
            assert response.status_code == 200  # closed before its body is read
        listener.close()
        await listener.wait_closed()
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{port}/")  # the unread response closed its connection
        assert transport.in_flight == 0
    assert server.connections == 1


async def test_the_sharded_transport_queues_requests_beyond_its_connections_itself() -> None:
    server = _Server(hold=10)
    listener, url = await _listening(server.serve)
    transport = ShardedTransport(connections=10)
    async with listener, httpx.AsyncClient(transport=transport) as http:
        responses = await asyncio.wait_for(asyncio.gather(*(http.get(url) for _ in range(300))), timeout=20)
        assert [response.status_code for response in responses] == [200] * 300
        assert transport.in_flight == 0
    assert server.connections == 10
    assert server.most_at_once == 10


async def test_a_request_waiting_for_a_connection_times_out_or_is_cancelled_without_taking_one() -> None:
    answer = asyncio.Event()
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                await answer.wait()
                writer.write(_RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionResetError):
            pass
        writer.close()

    listener, url = await _listening(serve)
    transport = ShardedTransport(connections=1)
    async with listener, httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(10, pool=0.2)) as http:
        first = asyncio.create_task(http.get(url))  # takes the one connection, unanswered for now
        await asyncio.sleep(0.1)
        with pytest.raises(httpx.PoolTimeout):
            await http.get(url)
        waiting = asyncio.create_task(http.get(url))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert transport.in_flight == 1
        second = asyncio.create_task(http.get(url))  # waits its turn, then is served
        await asyncio.sleep(0.05)
        answer.set()
        assert [(await first).status_code, (await second).status_code] == [200, 200]
        assert transport.in_flight == 0
        (await http.get(url)).raise_for_status()
    assert connections == 1


async def test_the_sharded_transport_replaces_a_connection_idle_for_its_keepalive_expiry() -> None:
    server = _Server()
    listener, url = await _listening(server.serve)
    transport = ShardedTransport(connections=1)
    async with listener, httpx.AsyncClient(transport=transport) as http:
        (await http.get(url)).raise_for_status()
        (await http.get(url)).raise_for_status()
        assert server.connections == 1  # kept alive
        # Idle past the expiry, but not past the 5 s after which a server like the sandbox's closes it.
        await asyncio.sleep(2.3)
        (await http.get(url)).raise_for_status()
    assert server.connections == 2
    assert KEEPALIVE_EXPIRY < 2.3


def test_the_sharded_transports_pools_share_one_tls_context() -> None:
    transport = ShardedTransport(connections=50)
    contexts = {id(pool._pool._ssl_context) for pool in transport._pools}
    assert len(contexts) == 1


async def test_a_connection_left_active_by_a_cancelled_request_is_replaced_not_reused() -> None:
    """Requests cut short at any point, by their own timeouts and by cancellations on top (as an activity's
    bounded read is, then the activity itself): no connection given back may still be marked active, or every
    request that takes it later waits out its pool timeout. Without the check, a storm like this one left one
    within a few rounds."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = b"x" * 20_000
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
                for start in range(0, len(body), 2_000):  # a body in pieces: cuts land while it is read
                    writer.write(body[start : start + 2_000])
                    await writer.drain()
                    await asyncio.sleep(0.0005)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    listener, url = await _listening(serve)
    transport = ShardedTransport(connections=4)
    rounds = random.Random(18)

    async def bounded_read(seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await http.get(url)
        except TimeoutError:
            pass

    async with listener, httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5, pool=0.5)) as http:
        for _ in range(150):
            reads = [asyncio.create_task(bounded_read(rounds.random() * 0.01)) for _ in range(12)]
            for _ in range(6):
                await asyncio.sleep(rounds.random() * 0.003)
                rounds.choice(reads).cancel()
            await asyncio.gather(*reads, return_exceptions=True)
            assert transport.in_flight == 0
            assert all(_settled(transport._pools[index]) for index in transport._idle)
        assert transport.replaced > 0  # the storm did leave connections active, and they were replaced
        for _ in range(8):  # every connection serves again, none waits out its pool timeout
            (await http.get(url)).raise_for_status()
