"""What every scenario gets: the running stack, clients for it, the mode's sizes and the progress display."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from temporalio.client import Client

from bench.client import Api, AppDb, new_http
from bench.params import Params
from bench.procinfo import CpuMeter
from bench.progress import Progress
from bench.stack import BenchStack
from sandbox.admin_client import SandboxAdmin


@dataclass
class Bench:
    stack: BenchStack
    params: Params
    progress: Progress
    http: httpx.AsyncClient
    api: Api
    sandbox: SandboxAdmin
    temporal: Client  # the product's client (its converter): for histories and visibility
    bare: Client  # the SDK's defaults: the bare baseline
    db: AppDb
    media_id: int  # one small JPEG, uploaded once and used by every post that is not about media
    notes: list[str] = field(default_factory=list)

    def api_client(self, http: httpx.AsyncClient) -> Api:
        return Api(http, self.stack.api_url, self.stack.api_key)


async def wait_for(
    progress: Progress,
    what: str,
    check: Callable[[], Awaitable[tuple[bool, str]]],
    *,
    give_up_after: float,
    interval: float = 0.5,
) -> float:
    """Poll ``check`` (done, status line) until done; returns the seconds waited. Times out loudly."""
    began = time.monotonic()
    while True:
        done, status = await check()
        progress.update(f"{what}: {status}")
        if done:
            progress.update(f"{what}: {status}", force=True)
            return time.monotonic() - began
        if time.monotonic() - began > give_up_after:
            raise TimeoutError(f"{what}: not done after {give_up_after:.0f} s ({status})")
        await asyncio.sleep(interval)


def in_thread(function: Callable[..., Any], *args: Any) -> Awaitable[Any]:
    return asyncio.to_thread(function, *args)


async def create_posts(
    bench: Bench, bodies: list[dict[str, Any]], *, label: str, concurrency: int | None = None
) -> tuple[list[dict[str, Any]], list[float]]:
    """POST /v1/posts for every body, by ``concurrency`` clients of their own; returns the posts in the order
    of ``bodies`` and each request's latency."""
    clients = concurrency or bench.params.create_concurrency
    created: list[dict[str, Any] | None] = [None] * len(bodies)
    latencies: list[float] = [0.0] * len(bodies)
    indexes = iter(range(len(bodies)))
    done = 0

    async def client() -> None:
        nonlocal done
        async with new_http() as http:
            api = bench.api_client(http)
            for index in indexes:  # a shared iterator: each client takes the next body when it is free
                latencies[index], created[index] = await api.create_post(bodies[index])
                done += 1
                bench.progress.update(f"{label}: {done}/{len(bodies)} posts created")

    # A task group: if one request fails, the other clients stop too instead of creating posts in the background.
    async with asyncio.TaskGroup() as group:
        for _ in range(min(clients, len(bodies))):
            group.create_task(client())
    bench.progress.update(f"{label}: {done}/{len(bodies)} posts created", force=True)
    return [post for post in created if post is not None], latencies


async def settle_workers(
    bench: Bench, what: str, *, quiet_cores: float = 0.05, limit_s: float = 300
) -> float:
    """Wait until every worker process has caught up (under ``quiet_cores`` of CPU for three seconds in a row):
    a scenario must not inherit the backlog of the one before. Returns the seconds waited: itself a figure, the
    time the worker needed to catch up with what was just asked of it."""
    pids = {name: pid for name, pid in bench.stack.pids().items() if name.startswith("worker")}
    began = time.monotonic()
    quiet = 0
    while quiet < 3 and time.monotonic() - began < limit_s:
        meter = CpuMeter(pids)
        await asyncio.sleep(1)
        cores = meter.read().cores()
        busy = max(cores[name] for name in pids)
        quiet = quiet + 1 if busy < quiet_cores else 0
        bench.progress.update(f"{what}: waiting for the worker to catch up ({busy * 100:.0f} % of a core)")
    return time.monotonic() - began
