"""1. Scheduling latency: POST /v1/posts as one client and as N concurrent clients, against bare
``client.start_workflow`` calls of a trivial workflow made in the same run.

Both paths are timed from the caller: the API from the HTTP client (request sent to response parsed), the bare
start from the Temporal client in this process. They alternate in blocks, so that neither is measured on a
quieter machine than the other. The posts are due a day ahead: they stay asleep, and count towards the idle
scenario's 10,000.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.bare_workflows import TrivialWorkflow
from bench.baseline import TASK_QUEUE
from bench.client import make_accounts, new_http, post_body
from bench.context import Bench
from bench.procinfo import CpuMeter
from bench.stats import ratio, summary_ms

NAME = "scheduling"
GOAL_RATIO = 1.5


async def run(bench: Bench) -> dict[str, Any]:
    params = bench.params
    account = (await make_accounts(bench.api, bench.sandbox, 1, "bench_sched"))[0]
    tag = uuid.uuid4().hex[:8]
    base = datetime.now(UTC) + timedelta(days=1)
    sequence = 0

    def next_body() -> dict[str, Any]:
        nonlocal sequence
        sequence += 1
        return post_body(
            account_id=account.id,
            media_id=bench.media_id,
            # Spread over hours: nothing in the run wakes them, and no instant gets thousands of timers.
            publish_at=base + timedelta(seconds=7 * sequence),
            caption=f"bench scheduling {tag} #{sequence}",
        )

    async def bare_start() -> None:
        nonlocal sequence
        sequence += 1
        await bench.bare.start_workflow(
            TrivialWorkflow.run, id=f"bench-trivial-{tag}-{sequence}", task_queue=TASK_QUEUE
        )

    results: dict[str, Any] = {"path": "api", "posts_per_level": params.scheduling_posts, "levels": {}}
    for clients in (1, params.scheduling_concurrency):
        label = f"{clients} client" + ("s" if clients > 1 else "")
        level = await _measure_level(bench, clients, label, next_body, bare_start)
        results["levels"][str(clients)] = level
        bench.progress.say(
            f"{NAME}, {label}: API p99 {level['api']['p99_ms']} ms, bare p99 {level['bare']['p99_ms']} ms, "
            f"ratio {level['ratio_p99']}"
        )
    worst = max(level["ratio_p99"] or 0 for level in results["levels"].values())
    results["goals"] = [
        {
            "goal": f"scheduling p99 within {GOAL_RATIO}x of bare start_workflow",
            "measured": ", ".join(
                f"{clients} client(s): {level['ratio_p99']}x ({level['api']['p99_ms']} vs {level['bare']['p99_ms']} ms)"
                for clients, level in results["levels"].items()
            ),
            "met": worst <= GOAL_RATIO,
        }
    ]
    return results


async def _measure_level(
    bench: Bench,
    clients: int,
    label: str,
    next_body: Callable[[], dict[str, Any]],
    bare_start: Callable[[], Awaitable[None]],
) -> dict[str, Any]:
    params = bench.params
    https = [new_http() for _ in range(clients)]
    apis = [bench.api_client(http) for http in https]

    async def api_call(client: int) -> float:
        latency, _post = await apis[client].create_post(next_body())
        return latency

    async def bare_call(_client: int) -> float:
        began = time.perf_counter()
        await bare_start()
        return time.perf_counter() - began

    try:
        # Warm-up, not measured: connections, the API's first queries, the worker's first workflow tasks.
        await _run_block(api_call, params.scheduling_warmup, clients)
        await _run_block(bare_call, params.scheduling_warmup, clients)

        api_latencies: list[float] = []
        bare_latencies: list[float] = []
        api_wall = bare_wall = 0.0
        pids = bench.stack.pids()
        api_cpu: dict[str, float] = {}
        bare_cpu: dict[str, float] = {}
        block = 0
        while len(api_latencies) < params.scheduling_posts:
            size = min(params.scheduling_block, params.scheduling_posts - len(api_latencies))
            # Alternate which path goes first in a block, so that neither always follows the other's load.
            order = ("api", "bare") if block % 2 == 0 else ("bare", "api")
            for path in order:
                meter = CpuMeter(pids)
                began = time.monotonic()
                if path == "api":
                    api_latencies += await _run_block(api_call, size, clients)
                    api_wall += time.monotonic() - began
                    _add(api_cpu, meter.read().cpu_s)
                else:
                    bare_latencies += await _run_block(bare_call, size, clients)
                    bare_wall += time.monotonic() - began
                    _add(bare_cpu, meter.read().cpu_s)
            block += 1
            bench.progress.update(
                f"{NAME}, {label}: {len(api_latencies)}/{params.scheduling_posts} API posts, "
                f"{len(bare_latencies)}/{params.scheduling_posts} bare starts"
            )
    finally:
        for http in https:
            await http.aclose()

    api = summary_ms(api_latencies)
    bare = summary_ms(bare_latencies)
    count = len(api_latencies)
    return {
        "clients": clients,
        "api": {**api, "per_second": round(count / api_wall, 1)},
        "bare": {**bare, "per_second": round(count / bare_wall, 1)},
        "ratio_p50": ratio(api["p50_ms"], bare["p50_ms"]),
        "ratio_p95": ratio(api["p95_ms"], bare["p95_ms"]),
        "ratio_p99": ratio(api["p99_ms"], bare["p99_ms"]),
        # CPU milliseconds each process spent per operation: where the API's extra time goes.
        "cpu_ms_per_api_post": {name: round(seconds / count * 1000, 2) for name, seconds in api_cpu.items()},
        "cpu_ms_per_bare_start": {
            name: round(seconds / count * 1000, 2) for name, seconds in bare_cpu.items()
        },
    }


def _add(total: dict[str, float], spent: dict[str, float]) -> None:
    for name, seconds in spent.items():
        total[name] = total.get(name, 0.0) + seconds


async def _run_block(call: Callable[[int], Awaitable[float]], count: int, clients: int) -> list[float]:
    """``count`` calls by ``clients`` concurrent callers, each starting its next call when its last one ends."""
    latencies: list[float] = []
    remaining = count

    async def caller(client: int) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            latencies.append(await call(client))

    async with asyncio.TaskGroup() as group:
        for client in range(min(clients, count)):
            group.create_task(caller(client))
    return latencies
