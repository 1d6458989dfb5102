"""An httpx transport made of one-connection pools, with its own queue for the requests beyond them.

httpcore's pool, on every request it queues and every response it releases, walks its queue against its
connections, and checks each idle connection's socket on the way (encode/httpcore#1035): its CPU per request
grows with its connections and its queue. The worker keeps a keep-alive connection per activity slot, 100 by
default. In one pool of 100 the walk was half of the CPU of a Graph API call (2.6-3.0 ms per request against a
local server); in pools of 16 it still was, once a burst's instant queued a thousand publish calls on them (a
quarter of the worker's time before most calls were sent). Here each connection is a pool of its own, and a
request takes a free one from a list or waits, first come first served, for one to be released: 1.0-1.3 ms per
request in a thousand at once against 1.8-2.4 ms in pools of 16 (bench/README.md).

A connection idle for KEEPALIVE_EXPIRY is not used again but replaced. A server closes an idle connection after
a keep-alive timeout of its own (5 s for uvicorn, the sandbox's server, as httpx's default expiry): a request sent
on a connection near that age can meet the close, and a media_publish that did (httpx ReadError after sending)
has an unknown outcome, settled only by reading the container a while later. A busy server makes that window
wider: at a burst's instant it reads the requests late, and closes the connections whose time came meanwhile.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx

# Well under the keep-alive timeouts of servers (5 s and up); reconnecting costs a handshake.
KEEPALIVE_EXPIRY = 2.0


class ShardedTransport(httpx.AsyncBaseTransport):
    """``connections`` keep-alive connections, each in a pool of its own. At most ``connections`` requests are in
    flight; the others wait for a connection at most the request's pool timeout, as they would in httpcore's
    queue. The connection freed last is used first, so that a light load keeps reusing a few warm ones."""

    def __init__(
        self, *, connections: int, verify: ssl.SSLContext | str | bool = True, **transport_options: Any
    ) -> None:
        self._limits = httpx.Limits(
            max_connections=1, max_keepalive_connections=1, keepalive_expiry=KEEPALIVE_EXPIRY
        )
        # One TLS context for all: each transport would otherwise load the CA bundle again (100 of them: 85 MiB
        # and 5 s of CPU at start).
        self._context = (
            verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
        )
        self._options = transport_options
        self._pools = [self._new_pool() for _ in range(connections)]
        self._idle = list(reversed(range(connections)))
        self._free = asyncio.Semaphore(connections)
        self._closing: set[asyncio.Task[None]] = set()
        self.replaced = 0

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet released."""
        return len(self._pools) - len(self._idle)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self._admit(request)
        index = self._idle.pop()  # admitted: one is free
        try:
            response = await self._pools[index].handle_async_request(request)
        except BaseException:
            self._release(index)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _ReleasingStream(response.stream, self, index)
        return response

    def _new_pool(self) -> httpx.AsyncHTTPTransport:
        return httpx.AsyncHTTPTransport(verify=self._context, limits=self._limits, **self._options)

    async def _admit(self, request: httpx.Request) -> None:
        if not self._free.locked():
            await self._free.acquire()  # at once
            return
        timeout = request.extensions.get("timeout", {}).get("pool")
        try:
            await asyncio.wait_for(self._free.acquire(), timeout)
        except TimeoutError:
            raise httpx.PoolTimeout(f"no connection free within {timeout} s", request=request) from None

    def _release(self, index: int) -> None:
        """Gives a connection back once its request is over. A cancellation that lands while httpcore closes a
        response (its shield holds off anyio's cancellations, not asyncio's own: a timeout, an activity's cancel)
        can leave the connection marked active (or connecting) with nobody to end it (encode/httpcore#1093, open
        in httpcore 1.0.9); every later request sent on it would wait out its pool timeout (httpcore's
        PoolTimeout), and, being the freed-last connection, it is the first one taken. Such a pool is replaced by
        a fresh one, and the old one closed, its socket with it."""
        if not _settled(self._pools[index]):
            stale, self._pools[index] = self._pools[index], self._new_pool()
            self.replaced += 1
            closing = asyncio.get_running_loop().create_task(stale.aclose())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        self._idle.append(index)
        self._free.release()

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


def _settled(pool: httpx.AsyncHTTPTransport) -> bool:
    """Whether a pool has no request under way: each of its connections (one at most) idle or closed."""
    return all(connection.is_idle() or connection.is_closed() for connection in pool._pool.connections)


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that gives its connection back when closed (httpx closes every response)."""

    def __init__(self, stream: httpx.AsyncByteStream, transport: ShardedTransport, index: int) -> None:
        self._stream = stream
        self._transport = transport
        self._index: int | None = index

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if self._index is not None:
                self._transport._release(self._index)
                self._index = None
