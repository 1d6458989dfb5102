"""6. Uploads under pressure: many at once, and slow ones, on one API process with the default settings.

- **Concurrent**: 100 users each upload a 3 MB JPEG at the same moment (as fast as the loopback takes it): how many
  succeed, the time until the last answer, and each upload's time.
- **Slow, one user**: one user starts 50 uploads at 2 KB/s (a client on a poor connection); meanwhile another
  user lists posts (GET /v1/posts, one request after another). The user's uploads beyond its limit are refused at
  once (429); the others stream in. The figure is the other user's p99, beside the same requests without the
  slow uploads.
- **Slow, many users**: 50 users with one upload at 2 KB/s each (no limit refuses any): the same list requests. A
  request held nothing shared while its body arrived only if this p99 stays as low as the first.

The slow uploads still in flight at the end of the window are abandoned (the connection closed), and the one user
then uploads once more: the abandoned uploads must have given their slots back.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

from sqlmodel import Session

from api.crud.users import create_user
from bench import paced_upload
from bench.client import Api, jpeg_of_size, new_http, small_jpeg
from bench.context import Bench, in_thread
from bench.procinfo import CpuMeter, mib, peak_rss_bytes, reset_peak_rss, rss_bytes
from bench.stats import summary_ms
from chronogram.db import make_engine

NAME = "uploads"
GOAL_LIST_P99_MS = 100.0
SLOW_BYTES_PER_SECOND = 2048


async def run(bench: Bench) -> dict[str, Any]:
    params = bench.params
    users = max(params.upload_concurrency, params.slow_uploads)
    keys = await _new_users(bench, users + 1)
    slow_user, keys = keys[0], keys[1:]

    concurrent = await _concurrent(bench, keys[: params.upload_concurrency])
    image = small_jpeg()
    async with new_http() as http:
        reader = Api(http, bench.stack.api_url, bench.stack.api_key)
        quiet = await _list_for(bench, reader, params.slow_window_s)
        one_user = await _slow(bench, reader, [slow_user] * params.slow_uploads, image)
        many_users = await _slow(bench, reader, keys[: params.slow_uploads], image)
    # The abandoned uploads gave their slots back: the one user may upload again.
    after = await _upload_again(bench, slow_user, image)

    all_ok = concurrent["statuses"] == {"201": params.upload_concurrency}
    p99 = one_user["list"]["p99_ms"]
    return {
        "path": "api",
        "concurrent": concurrent,
        "slow": {
            "bytes_per_second": SLOW_BYTES_PER_SECOND,
            "image_bytes": len(image),
            "window_s": params.slow_window_s,
            "list_without_uploads": quiet,
            "one_user": one_user,
            "many_users": many_users,
            "one_user_uploads_again_after_abandoning": after,
        },
        "goals": [
            {
                "goal": f"{params.upload_concurrency} concurrent {params.upload_bytes / 1e6:g} MB uploads all succeed",
                "measured": f"{concurrent['statuses']} in {concurrent['seconds']} s",
                "met": all_ok,
            },
            {
                "goal": f"GET /v1/posts p99 under {GOAL_LIST_P99_MS:g} ms while another user sends "
                f"{params.slow_uploads} uploads at 2 KB/s",
                "measured": f"p99 {p99} ms (without them {quiet['p99_ms']} ms; {params.slow_uploads} users with "
                f"one each: {many_users['list']['p99_ms']} ms)",
                "met": p99 < GOAL_LIST_P99_MS and many_users["list"]["p99_ms"] < GOAL_LIST_P99_MS,
            },
        ],
    }


async def _new_users(bench: Bench, count: int) -> list[str]:
    """Users made straight in the application database (as `python -m api.admin create-user` does, without a
    process each), each key used once: a key's first use is a write, the later ones are reads."""

    def create() -> list[str]:
        engine = make_engine(bench.stack.settings.database_url)
        tag = uuid.uuid4().hex[:8]
        try:
            with Session(engine) as session:
                return [create_user(session, name=f"uploader-{tag}-{index}")[1] for index in range(count)]
        finally:
            engine.dispose()

    keys: list[str] = await in_thread(create)
    async with new_http(connections=10) as http:
        for start in range(0, count, 10):
            await asyncio.gather(
                *(
                    Api(http, bench.stack.api_url, key).request("GET", "/v1/media")
                    for key in keys[start : start + 10]
                )
            )
    return keys


async def _concurrent(bench: Bench, keys: list[str]) -> dict[str, Any]:
    params = bench.params
    data: bytes = await in_thread(jpeg_of_size, params.upload_bytes)
    api_pid = bench.stack.pids()["api"]
    api_rss = rss_bytes(api_pid)
    tracked = reset_peak_rss(api_pid)
    began = time.perf_counter()
    answers = await asyncio.gather(*(paced_upload.upload(bench.stack.api_url, key, data) for key in keys))
    seconds = time.perf_counter() - began
    bench.progress.update(f"{NAME}: {len(keys)} concurrent uploads in {seconds:.1f} s", force=True)
    return {
        "uploads": len(keys),
        "image_bytes": len(data),
        "statuses": _statuses(answers),
        "seconds": round(seconds, 2),
        "upload": summary_ms([answer.seconds for answer in answers]),
        "api_peak_above_rest_mib": mib(peak_rss_bytes(api_pid) - api_rss) if tracked else None,
    }


async def _slow(bench: Bench, reader: Api, keys: list[str], image: bytes) -> dict[str, Any]:
    """The slow uploads of ``keys`` (one each), and the reader's list requests while they stream in."""
    abandon = asyncio.Event()
    uploads = [
        asyncio.create_task(
            paced_upload.upload(
                bench.stack.api_url, key, image, bytes_per_second=SLOW_BYTES_PER_SECOND, abandon=abandon
            )
        )
        for key in keys
    ]
    await asyncio.sleep(0.5)  # every upload has begun
    listed = await _list_for(bench, reader, bench.params.slow_window_s)
    in_flight = sum(not task.done() for task in uploads)
    abandon.set()
    answers = await asyncio.gather(*uploads)
    refused = [answer for answer in answers if answer.status == 429]
    bench.progress.update(
        f"{NAME}: slow uploads from {len(set(keys))} user(s): list p99 {listed['p99_ms']} ms"
    )
    return {
        "uploads": len(keys),
        "users": len(set(keys)),
        "refused": len(refused),  # 429 too_many_uploads, before their bodies were read
        "refusal_ms": summary_ms([answer.seconds for answer in refused]) if refused else None,
        "in_flight_at_window_end": in_flight,
        "statuses": _statuses(answers),  # "0": abandoned at the end of the window
        "list": listed,
    }


async def _list_for(bench: Bench, reader: Api, seconds: float) -> dict[str, Any]:
    """The reader's list requests, one after another for ``seconds``: latency, and the API's CPU meanwhile (its
    share of one core; the requests' own work included)."""
    latencies: list[float] = []
    offsets: list[float] = []
    meter = CpuMeter({"api": bench.stack.pids()["api"]})
    began = time.monotonic()
    while time.monotonic() < began + seconds:
        offsets.append(time.monotonic() - began)
        latency, _page = await reader.list_posts()
        latencies.append(latency)
    worst = sorted(zip(latencies, offsets, strict=True), reverse=True)[:5]
    return {
        **summary_ms(latencies),
        "api_cpu_cores": meter.read().cores()["api"],
        # When the slowest requests were sent, in seconds from the window's start: a tail at the start is the
        # uploads arriving, one spread over the window is their streaming.
        "slowest": [{"ms": round(latency * 1000, 1), "at_s": round(at, 2)} for latency, at in worst],
    }


async def _upload_again(bench: Bench, key: str, image: bytes) -> dict[str, Any]:
    began = time.perf_counter()
    while True:
        answer = await paced_upload.upload(bench.stack.api_url, key, image)
        if answer.status != 429 or time.perf_counter() - began > 10:
            break
        await asyncio.sleep(0.2)
    return {"status": answer.status, "after_s": round(time.perf_counter() - began, 2)}


def _statuses(answers: list[paced_upload.Answer]) -> dict[str, int]:
    return {
        str(status): count for status, count in sorted(Counter(answer.status for answer in answers).items())
    }
