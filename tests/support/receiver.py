"""A real webhook receiver in the test process: an HTTP server (uvicorn) that verifies every delivery's signature
with the standardwebhooks library, as a client's server would, and keeps what it received. It can answer any
status, or be stopped and started again on the same port (a receiver that is down)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from devstack.processes import free_port

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool
    received_at: float  # time.time()

    @property
    def payload(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class WebhookReceiver:
    port: int
    secrets: list[str] = field(default_factory=list)
    status: int = 200
    received: list[Received] = field(default_factory=list)
    # The webhook-id of every request, on arrival (before it is answered).
    arrivals: list[str] = field(default_factory=list)
    # Requests to hold unanswered until ``release`` is set (a receiver that hangs mid-delivery): the next ``hold``
    # ones, or of those only the ones whose body ``hold_only`` accepts; ``held`` lists their webhook-ids.
    hold: int = 0
    hold_only: Callable[[bytes], bool] | None = None
    held: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/chronogram"

    def accepted(self) -> list[Received]:
        """What the receiver answered 2xx to, in arrival order."""
        return [r for r in self.received if r.verified and 200 <= self._status_of(r) < 300]

    def _status_of(self, received: Received) -> int:
        return int(received.headers.get("x-answered", "0"))

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        self.arrivals.append(headers.get("webhook-id", ""))
        if self.hold > 0 and (self.hold_only is None or self.hold_only(body)):
            self.hold -= 1
            self.held.append(headers.get("webhook-id", ""))
            await self.release.wait()
        verified = False
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
                verified = True
                break
            except WebhookVerificationError:
                continue
        status = self.status if verified else 400
        headers["x-answered"] = str(status)
        self.received.append(Received(headers=headers, body=body, verified=verified, received_at=time.time()))
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"ok" if status < 300 else b"no"})

    async def start(self) -> None:
        config = uvicorn.Config(self, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None

    async def wait_for(self, predicate: Callable[[WebhookReceiver], bool], *, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        while not predicate(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"the receiver did not get what was expected: {self.types()}")
            await asyncio.sleep(0.05)

    def types(self, post_id: int | None = None, *, unique: bool = False) -> list[str]:
        """The event types accepted, in arrival order (of one post's events, if given); ``unique``: each event
        once, as a receiver that drops duplicates by webhook-id sees them."""
        seen: set[str] = set()
        types = []
        for r in self.accepted():
            if post_id is not None and r.payload["data"].get("post_id") != post_id:
                continue
            if unique and r.webhook_id in seen:
                continue
            seen.add(r.webhook_id)
            types.append(r.payload["type"])
        return types


@asynccontextmanager
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver(port=free_port())
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()
