"""7. Best times at scale: GET /v1/accounts/{id}/optimal-times on an account with ``insights_posts`` published posts,
each with a +24 h reading, timed from the HTTP client over ``insights_requests`` sequential requests.

The published posts and their readings are written straight into the application database (publishing 10,000
posts through Instagram's quota of 100 a day is not what is measured here); their engagement is the sandbox's
synthetic model (sandbox.audience), with five planted peaks that the answer must name.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.client import make_accounts
from bench.context import Bench, in_thread
from bench.stats import summary_ms
from sandbox.audience import AudienceProfile, Peak, media_engagement

NAME = "insights"
GOAL_P99_MS = 1000.0
_PEAKS = [Peak(2, 19, 6.0), Peak(4, 18, 5.0), Peak(0, 9, 4.0), Peak(6, 11, 3.2), Peak(1, 13, 2.6)]


def _rows(count: int) -> list[dict[str, Any]]:
    profile = AudienceProfile(followers=8000, lag_seconds=0, peaks=_PEAKS)
    start = datetime.now(UTC).replace(minute=5, second=0, microsecond=0) - timedelta(days=count // 24 + 10)
    rows = []
    for index in range(count):
        published_at = start + timedelta(hours=index)
        media_id = str(17_980_000_000_000_000 + uuid.uuid4().int % 10**15)
        numbers = media_engagement(
            profile,
            media_id=media_id,
            product_type="FEED",
            published_at=published_at,
            now=published_at + timedelta(hours=24),
        )
        rows.append(
            {
                "published_at": published_at,
                "ig_media_id": media_id,
                "reach": numbers.reach,
                "likes": numbers.likes,
                "comments": numbers.comments,
                "saved": numbers.saved,
                "shares": numbers.shares,
                "views": numbers.views,
                "total_interactions": numbers.total_interactions("FEED"),
            }
        )
    return rows


async def run(bench: Bench) -> dict[str, Any]:
    params = bench.params
    account = (await make_accounts(bench.api, bench.sandbox, 1, "bench_insights"))[0]
    rows = _rows(params.insights_posts)
    began = time.monotonic()
    await in_thread(bench.db.seed_published_posts, account.id, rows)
    bench.progress.say(
        f"{NAME}: {len(rows)} published posts with readings seeded in {time.monotonic() - began:.1f} s"
    )

    path = f"/v1/accounts/{account.id}/optimal-times"
    latencies: list[float] = []
    body: dict[str, Any] = {}
    for index in range(params.insights_requests + 3):
        latency, body = await bench.api.get_json(path)
        if index >= 3:  # warm-up
            latencies.append(latency)
        bench.progress.update(f"{NAME}: {len(latencies)}/{params.insights_requests} requests")
    summary = summary_ms(latencies)
    found = [(slot["weekday"], slot["hour"]) for slot in body.get("slots", [])]
    days = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    planted = [(days[peak.weekday], peak.hour) for peak in _PEAKS]
    return {
        "path": "api",
        "published_posts": len(rows),
        "requests": len(latencies),
        "latency": summary,
        "source": body.get("source"),
        "slots_found": found,
        "planted_slots_recovered": found == planted,
        "goals": [
            {
                "goal": f"optimal-times p99 under {GOAL_P99_MS:.0f} ms at {len(rows)} published posts",
                "measured": f"p99 {summary['p99_ms']} ms (p50 {summary['p50_ms']} ms)",
                "met": summary["p99_ms"] is not None and summary["p99_ms"] < GOAL_P99_MS,
            },
            {"goal": "the five planted slots, best first", "measured": str(found), "met": found == planted},
        ],
    }
