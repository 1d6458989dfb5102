"""5. Media: a 10 MB JPEG uploaded through POST /v1/media (time, and the API's peak memory above its resting
size), then published, so that the worker renders the Instagram copy (prepare_media: time from the workflow's
history, and the worker's peak memory); the same rendition is also measured alone in a fresh process.

POST /v1/media refuses images over 8 MiB by default, Instagram's own limit; the benchmark's stack raises that
limit (CHRONOGRAM_API_MAX_IMAGE_UPLOAD_BYTES) so that a 10 MB upload is accepted and measured.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.client import jpeg_of_size, make_accounts, post_body, published_media
from bench.context import Bench, in_thread, wait_for
from bench.histories import activity_times
from bench.procinfo import mib, peak_rss_bytes, reset_peak_rss, rss_bytes
from chronogram.contracts import post_workflow_id
from chronogram.settings import PROJECT_ROOT

NAME = "media"
GOAL_UPLOAD_S = 1.5


async def run(bench: Bench) -> dict[str, Any]:
    params = bench.params
    pids = bench.stack.pids()
    data: bytes = await in_thread(jpeg_of_size, params.media_bytes)
    image = bench.stack.workdir / "upload.jpg"
    image.write_bytes(data)

    api_rss = rss_bytes(pids["api"])
    api_peak_tracked = reset_peak_rss(pids["api"])
    uploads: list[float] = []
    uploaded: dict[str, Any] = {}
    for index in range(params.media_uploads):
        began = time.perf_counter()
        uploaded = await bench.api.upload(data, f"photo-{index}.jpg")
        uploads.append(time.perf_counter() - began)
        bench.progress.update(f"{NAME}: upload {index + 1}/{params.media_uploads}: {uploads[-1]:.2f} s")
    api_peak = peak_rss_bytes(pids["api"])

    account = (await make_accounts(bench.api, bench.sandbox, 1, "bench_media"))[0]
    worker_rss = rss_bytes(pids["worker"])
    worker_peak_tracked = reset_peak_rss(pids["worker"])
    publish_at = datetime.now(UTC) + timedelta(seconds=10)
    _latency, post = await bench.api.create_post(
        post_body(
            account_id=account.id,
            media_id=int(uploaded["id"]),
            publish_at=publish_at,
            caption=f"bench media {uuid.uuid4().hex[:8]}",
        )
    )
    post_id = int(post["id"])

    async def published() -> tuple[bool, str]:
        counts = await in_thread(bench.db.statuses, [post_id])
        status = next(iter(counts), "?")
        return status in ("published", "failed", "cancelled"), status

    await wait_for(bench.progress, NAME, published, give_up_after=120)
    worker_peak = peak_rss_bytes(pids["worker"])
    rendition = await activity_times(bench.temporal, post_workflow_id(post_id), "prepare_media")
    truth = await published_media(bench.sandbox, [account])
    probe = await in_thread(_probe, str(image))

    worst = max(uploads)
    return {
        "path": "api",
        "image_bytes": len(data),
        "image_size": [uploaded.get("width"), uploaded.get("height")],
        "upload_s": [round(value, 3) for value in uploads],
        "upload_median_s": round(sorted(uploads)[len(uploads) // 2], 3),
        "upload_max_s": round(worst, 3),
        "api_rss_mib": mib(api_rss),
        "api_peak_above_rest_mib": mib(api_peak - api_rss) if api_peak_tracked else None,
        "rendition_in_worker": {
            **rendition,
            "worker_rss_mib": mib(worker_rss),
            "worker_peak_above_rest_mib": mib(worker_peak - worker_rss) if worker_peak_tracked else None,
        },
        "rendition_alone": {
            "seconds": probe["seconds"],
            "rendition_bytes": probe["rendition_bytes"],
            "rendition_size": probe["rendition_size"],
            "peak_above_rest_mib": mib(probe["peak_above_baseline_bytes"] or 0),
        },
        "published": len(truth) == 1,
        "goals": [
            {
                "goal": f"10 MB image upload under {GOAL_UPLOAD_S:g} s",
                "measured": f"max {worst:.3f} s over {len(uploads)} (median {sorted(uploads)[len(uploads) // 2]:.3f} s)",
                "met": worst < GOAL_UPLOAD_S,
            }
        ],
    }


def _probe(image: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "bench.media_probe", image],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report
