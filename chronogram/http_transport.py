"""An httpx transport made of several small connection pools instead of one large one.

httpcore's pool, on every request it starts and every response it releases, walks its connections and, for each
idle one, counts them all again (encode/httpcore#1035): its CPU per request grows with the square of its size.
The worker keeps a keep-alive connection per activity slot, 100 by default, and at that size the walk was half of
the CPU of a Graph API call: 2.6-3.0 ms per request against a local server, 0.5-0.64 ms in pools of 16
(bench/README.md).

Requests beyond the connections wait here, in order, for one to be free: not in httpcore's queue, which it walks,
with every connection, on each request it queues and each response it releases. At a burst's instant, a thousand
publish calls queued on 100 connections spent a quarter of the worker's time in that walk before most were sent.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import httpx

POOL_SIZE = 16


class ShardedTransport(httpx.AsyncBaseTransport):
    """``connections`` keep-alive connections in pools of at most ``POOL_SIZE``. At most ``connections`` requests
    are in flight; each goes to the pool with the fewest, which has a free connection. The others wait for one
    (first come, first served) at most the request's pool timeout, as they would in httpcore's queue."""

    def __init__(self, *, connections: int, **transport_options: Any) -> None:
        count = math.ceil(connections / POOL_SIZE)
        size = math.ceil(connections / count)
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        self._pools = [httpx.AsyncHTTPTransport(limits=limits, **transport_options) for _ in range(count)]
        self._in_flight = [0] * count
        self._free = asyncio.Semaphore(connections)

    @property
    def in_flight(self) -> list[int]:
        """Requests sent and not yet released, per pool."""
        return list(self._in_flight)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self._admit(request)
        index = min(range(len(self._pools)), key=self._in_flight.__getitem__)
        self._in_flight[index] += 1
        try:
            response = await self._pools[index].handle_async_request(request)
        except BaseException:
            self._release(index)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _ReleasingStream(response.stream, self, index)
        return response

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
        self._in_flight[index] -= 1
        self._free.release()

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that counts its request out of its pool when closed (httpx closes every response)."""

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
