"""4. Idle cost: posts scheduled a day ahead (the scheduling scenario's count towards them; the rest are created
here), then, once the worker has settled, what the stack costs while they sleep: worker and dev-server RSS, CPU
over an idle window, GET /v1/posts latency at that size, and the size of both databases.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.client import make_accounts, new_http, post_body
from bench.context import Bench, create_posts, in_thread, settle_workers
from bench.procinfo import CpuMeter, mib, rss_bytes
from bench.stats import summary_ms

NAME = "idle"
GOAL_RSS_MIB = 256
# "Near zero": one percent of one core, averaged over the window.
GOAL_CPU_CORES = 0.01
GOAL_LIST_P99_MS = 20.0


async def run(bench: Bench) -> dict[str, Any]:
    params = bench.params
    pids = bench.stack.pids()
    rss_before = {name: mib(rss_bytes(pid)) for name, pid in pids.items()}
    far = datetime.now(UTC) + timedelta(hours=12)
    existing = await in_thread(bench.db.count_scheduled_after, far)
    missing = max(0, params.idle_posts - existing)
    if missing:
        accounts = await make_accounts(bench.api, bench.sandbox, 10, "bench_idle")
        tag = uuid.uuid4().hex[:8]
        base = datetime.now(UTC) + timedelta(days=1)
        bodies = [
            post_body(
                account_id=accounts[index % len(accounts)].id,
                media_id=bench.media_id,
                publish_at=base + timedelta(seconds=5 * index),
                caption=f"bench idle {tag} #{index}",
            )
            for index in range(missing)
        ]
        await create_posts(bench, bodies, label=f"{NAME} (scheduling {missing} more)")
    sleeping = await in_thread(bench.db.count_scheduled_after, far)

    settle = await settle_workers(bench, NAME)
    await asyncio.sleep(params.idle_settle_s)
    settle += params.idle_settle_s
    bench.progress.say(
        f"{NAME}: {sleeping} posts asleep; worker settled after {settle:.0f} s; measuring for "
        f"{params.idle_window_s:g} s"
    )
    meter = CpuMeter(pids)
    peaks = dict.fromkeys(pids, 0)
    elapsed = 0.0
    while elapsed < params.idle_window_s:
        for name, pid in pids.items():
            peaks[name] = max(peaks[name], rss_bytes(pid))
        step = min(1.0, params.idle_window_s - elapsed)
        await asyncio.sleep(step)
        elapsed += step
        bench.progress.update(f"{NAME}: idle {elapsed:.0f}/{params.idle_window_s:g} s")
    cpu = meter.read()
    rss = {name: mib(rss_bytes(pid)) for name, pid in pids.items()}

    listing = await _list_latency(bench)
    cores = cpu.cores()
    worker_rss = max(rss["worker"], mib(peaks["worker"]))
    return {
        "path": "api",
        "sleeping_posts": sleeping,
        "created_here": missing,
        "settle_s": round(settle, 1),
        "rss_mib_before_scheduling": rss_before,
        "rss_mib": rss,
        "rss_mib_peak_in_window": {name: mib(value) for name, value in peaks.items()},
        "idle_cpu": cpu.to_json(),
        "list": listing,
        "database_bytes": {
            "app": await in_thread(bench.db.size_bytes, bench.stack.app_db),
            "app_backend": bench.stack.config.database,
            "temporal_backend": bench.stack.config.temporal,
            "temporal": await in_thread(bench.stack.temporal_database_bytes),
        },
        "goals": [
            {
                "goal": f"idle worker RSS under {GOAL_RSS_MIB} MB with {params.idle_posts:,} sleeping posts",
                "measured": f"{worker_rss} MiB ({sleeping:,} asleep)",
                "met": worker_rss < GOAL_RSS_MIB and sleeping >= params.idle_posts,
            },
            {
                "goal": "idle worker CPU near zero",
                "measured": f"{cores['worker'] * 100:.2f} % of a core over {cpu.wall_s:.0f} s",
                "met": cores["worker"] <= GOAL_CPU_CORES,
            },
            {
                "goal": f"GET /v1/posts p99 under {GOAL_LIST_P99_MS:g} ms at {params.idle_posts:,} posts",
                "measured": f"p99 {listing['all']['p99_ms']} ms (p50 {listing['all']['p50_ms']})",
                "met": listing["all"]["p99_ms"] < GOAL_LIST_P99_MS,
            },
        ],
    }


async def _list_latency(bench: Bench) -> dict[str, Any]:
    """One client, one request at a time: every page of the list once (cursor pagination, default page size),
    then random pages by their cursors and the first page, up to the configured number of requests."""
    params = bench.params
    latencies: list[float] = []
    cursors: list[str | None] = [None]
    async with new_http() as http:
        api = bench.api_client(http)
        for _ in range(3):  # warm-up: the connection, the API's first query plans
            await api.list_posts()
        cursor: str | None = None
        while len(latencies) < params.list_requests:
            latency, page = await api.list_posts(**({"cursor": cursor} if cursor else {}))
            latencies.append(latency)
            cursor = page["next_cursor"]
            if cursor is None:
                break
            cursors.append(cursor)
            bench.progress.update(f"{NAME}: listing, page {len(latencies)}")
        pages = len(latencies)
        rng = random.Random(4)
        while len(latencies) < params.list_requests:
            chosen = rng.choice(cursors)
            latency, _page = await api.list_posts(**({"cursor": chosen} if chosen else {}))
            latencies.append(latency)
        filtered: list[float] = []
        for _ in range(min(100, params.list_requests)):
            latency, _page = await api.list_posts(status="scheduled")
            filtered.append(latency)
    return {
        "page_size": "default",
        "pages_walked": pages,
        # Page by page, in order: whether latency grows with the depth of the cursor shows here.
        "walk_ms": [round(value * 1000, 1) for value in latencies[:pages]],
        "all": summary_ms(latencies),
        "status_scheduled_first_page": summary_ms(filtered),
    }
