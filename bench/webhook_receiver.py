"""A webhook receiver in the benchmark's process: verifies each delivery with standardwebhooks, as a client would,
and notes when each event arrived, for the notification latency (the event's occurred_at, written in the
transition's transaction, to its arrival here)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from devstack.processes import free_port

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


@dataclass
class Arrival:
    event_id: str
    type: str
    post_id: int | None
    latency_s: float  # arrival minus occurred_at


@dataclass
class LatencyReceiver:
    port: int = field(default_factory=free_port)
    secret: str = ""
    arrivals: list[Arrival] = field(default_factory=list)
    refused: int = 0
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

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
        now = time.time()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError:
            self.refused += 1
            await self._answer(send, 400)
            return
        event = json.loads(body)
        occurred = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00")).astimezone(UTC)
        self.arrivals.append(
            Arrival(event["id"], event["type"], event["data"].get("post_id"), now - occurred.timestamp())
        )
        await self._answer(send, 204)

    @staticmethod
    async def _answer(send: Callable[[Message], Awaitable[None]], status: int) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

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
