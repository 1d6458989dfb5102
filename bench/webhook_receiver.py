"""A webhook receiver in a process of its own: verifies each delivery with standardwebhooks, as a client would, and
notes when each event arrived, for the notification latency (the event's occurred_at, written in the
transition's transaction, to its arrival here).

Its own process, so that its event loop is not the benchmark client's, busy creating posts at the very moment the
burst of post.scheduled events arrives (a receiver sharing that loop measured its own queueing). The benchmark
starts it with ``LatencyReceiver.start(secret)`` (the secret in the environment, never on a command line) and
reads the arrivals it appends, one JSON line each, to a file.

    python -m bench.webhook_receiver --port 9999 --out /tmp/arrivals.jsonl   # CHRONOGRAM_BENCH_WEBHOOK_SECRET=whsec_...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import uvicorn
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from devstack.processes import free_port

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
SECRET_VARIABLE = "CHRONOGRAM_BENCH_WEBHOOK_SECRET"


@dataclass
class Arrival:
    event_id: str
    type: str
    post_id: int | None
    latency_s: float  # arrival minus occurred_at


class _App:
    """The receiving end (in the receiver's process): one line per request, flushed at once."""

    def __init__(self, secret: str, out: IO[str]) -> None:
        self._webhook = Webhook(secret)
        self._out = out

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
            self._webhook.verify(body, headers)
        except WebhookVerificationError:
            self._write({"refused": True})
            await _answer(send, 400)
            return
        event = json.loads(body)
        occurred = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00")).astimezone(UTC)
        self._write(
            {
                "event_id": event["id"],
                "type": event["type"],
                "post_id": event["data"].get("post_id"),
                "latency_s": now - occurred.timestamp(),
            }
        )
        await _answer(send, 204)

    def _write(self, line: dict[str, Any]) -> None:
        self._out.write(json.dumps(line) + "\n")
        self._out.flush()


async def _answer(send: Callable[[Message], Awaitable[None]], status: int) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@dataclass
class LatencyReceiver:
    """The benchmark's handle on the receiver's process."""

    port: int = field(default_factory=free_port)
    _process: asyncio.subprocess.Process | None = None
    _dir: tempfile.TemporaryDirectory[str] | None = None
    _seen: int = 0
    _arrivals: list[Arrival] = field(default_factory=list)
    _refused: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def _out(self) -> Path:
        assert self._dir is not None, "the receiver is not started"
        return Path(self._dir.name) / "arrivals.jsonl"

    async def start(self, secret: str) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="bench-webhooks-")
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.webhook_receiver",
            "--port",
            str(self.port),
            "--out",
            str(self._out),
            env={**os.environ, SECRET_VARIABLE: secret},
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                if self._process.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError("the webhook receiver did not start") from None
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return

    def _read(self) -> None:
        if self._dir is None or not self._out.exists():
            return
        text = self._out.read_text()
        lines = text.splitlines()
        complete = lines if text.endswith("\n") else lines[:-1]  # a line being written waits
        for line in complete[self._seen :]:
            row = json.loads(line)
            if row.get("refused"):
                self._refused += 1
            else:
                self._arrivals.append(Arrival(row["event_id"], row["type"], row["post_id"], row["latency_s"]))
        self._seen = len(complete)

    @property
    def arrivals(self) -> list[Arrival]:
        self._read()
        return self._arrivals

    @property
    def refused(self) -> int:
        self._read()
        return self._refused

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            await self._process.wait()
        self._read()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    secret = os.environ.get(SECRET_VARIABLE, "")
    if not secret:
        parser.error(f"{SECRET_VARIABLE} is not set")
    with args.out.open("a", encoding="utf-8") as out:
        config = uvicorn.Config(
            _App(secret, out), host="127.0.0.1", port=args.port, log_level="warning", lifespan="off"
        )
        uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
