"""2. Punctuality: posts over many accounts, due at spread-out instants within a window; the lag between each
post's publish_at and the moment the sandbox committed its media_publish (its ground truth, published_at).

Meanwhile a webhook subscribed to every post event sends them to a receiver in a process of its own
(bench/webhook_receiver.py), which verifies each signature: the notification latency is from each event's transition (its occurred_at) to its
arrival there.

The posts are created a little ahead of the window, so each is prepared (media rendered, container made and
FINISHED) well before its instant, as in production where preparation starts 10 minutes ahead: what is measured
is the timer, the workflow task and the few calls between the instant and the publish.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.client import make_accounts, post_body, published_media
from bench.context import Bench, create_posts, in_thread, wait_for
from bench.histories import timeline
from bench.stats import summary_ms
from bench.webhook_receiver import LatencyReceiver
from chronogram.contracts import post_workflow_id

NAME = "punctuality"
GOAL_P99_S = 1.0
NOTIFICATION_GOAL_P99_S = 1.0
POST_EVENTS = ["post.scheduled", "post.cancelled", "post.publishing", "post.published", "post.failed"]


async def run(bench: Bench) -> dict[str, Any]:
    receiver = LatencyReceiver()
    try:
        return await _run(bench, receiver)
    finally:
        await receiver.stop()


async def _run(bench: Bench, receiver: LatencyReceiver) -> dict[str, Any]:
    params = bench.params
    hook = await bench.api.request(
        "POST", "/v1/webhooks", expect=201, json={"url": receiver.url, "event_types": POST_EVENTS}
    )
    await receiver.start(hook["secret"])  # in a process of its own
    accounts = await make_accounts(bench.api, bench.sandbox, params.punctuality_accounts, "bench_punct")
    tag = uuid.uuid4().hex[:8]
    rng = random.Random(2)  # the same instants every run
    first = datetime.now(UTC) + timedelta(seconds=params.punctuality_lead_s)
    # Arbitrary milliseconds, never round seconds: a timer service that only fires on the second would hide.
    offsets = sorted(rng.uniform(0, params.punctuality_window_s) for _ in range(params.punctuality_posts))
    bodies = [
        post_body(
            account_id=accounts[index % len(accounts)].id,
            media_id=bench.media_id,
            publish_at=first + timedelta(seconds=offset),
            caption=f"bench punctuality {tag} #{index}",
        )
        for index, offset in enumerate(offsets)
    ]
    posts, _latencies = await create_posts(bench, bodies, label=NAME)
    created_by = datetime.now(UTC)
    post_ids = [int(post["id"]) for post in posts]
    last = max(datetime.fromisoformat(post["publish_at"]) for post in posts)

    async def check() -> tuple[bool, str]:
        counts = await in_thread(bench.db.statuses, post_ids)
        final = sum(counts.get(status, 0) for status in ("published", "failed", "cancelled"))
        until = (last - datetime.now(UTC)).total_seconds()
        window = f"last due in {until:.0f} s" if until > 0 else "all due"
        return final == len(post_ids), f"{counts.get('published', 0)}/{len(post_ids)} published, {window}"

    async def until_first() -> tuple[bool, str]:
        ready = await in_thread(bench.db.prepared, post_ids)
        until = (first - datetime.now(UTC)).total_seconds()
        return until <= 0, f"{ready}/{len(post_ids)} prepared, first due in {max(until, 0):.0f} s"

    await wait_for(
        bench.progress,
        f"{NAME} (preparing)",
        until_first,
        give_up_after=params.punctuality_lead_s + 30,
        interval=1,
    )
    # As in production, where each post is prepared 10 minutes ahead, every post should be ready before the
    # window opens; if not, the lag of the late ones includes their preparation (the report says how many).
    prepared_at_first = await in_thread(bench.db.prepared, post_ids)
    timeout = params.punctuality_lead_s + params.punctuality_window_s + 120
    await wait_for(bench.progress, NAME, check, give_up_after=timeout)

    async def notified() -> tuple[bool, str]:
        published = {a.post_id for a in receiver.arrivals if a.type == "post.published"}
        return len(published) >= len(post_ids), f"{len(published)}/{len(post_ids)} post.published received"

    await wait_for(bench.progress, f"{NAME} (webhooks)", notified, give_up_after=60)
    mine = set(post_ids)
    notification_lags = [a.latency_s for a in receiver.arrivals if a.post_id in mine]
    notification_latency: dict[str, Any] = summary_ms(notification_lags) if notification_lags else {}
    notifications: dict[str, Any] = {
        "events": len(notification_lags),
        "by_type": {t: sum(1 for a in receiver.arrivals if a.type == t) for t in POST_EVENTS},
        "refused_signatures": receiver.refused,
        "duplicates": len(receiver.arrivals) - len({a.event_id for a in receiver.arrivals}),
        "latency": notification_latency,
        # Per type: post.scheduled comes in a burst while the posts are created, before the window opens.
        "latency_by_type": {
            t: summary_ms(lags_of_type)
            for t in POST_EVENTS
            if (lags_of_type := [a.latency_s for a in receiver.arrivals if a.post_id in mine and a.type == t])
        },
    }
    notification_p99_s = notification_latency.get("p99_ms", float("inf")) / 1000

    truth = await published_media(bench.sandbox, accounts)
    by_caption: dict[str, list[dict[str, Any]]] = {}
    for media in truth:
        by_caption.setdefault(media["caption"], []).append(media)
    lags: list[float] = []
    per_post: list[tuple[float, int]] = []  # (lag, post id), to find the late ones
    for post in posts:
        published = by_caption.get(post["caption"], [])
        if published:
            instant = datetime.fromisoformat(post["publish_at"])
            lags.append((datetime.fromisoformat(published[0]["published_at"]) - instant).total_seconds())
            per_post.append((lags[-1], int(post["id"])))
    # Where the slowest posts spent their time, from their histories: the evidence for a missed goal.
    slowest = {}
    for lag_s, post_id in sorted(per_post, reverse=True)[:3]:
        post = next(p for p in posts if int(p["id"]) == post_id)
        slowest[f"post {post_id} (lag {lag_s * 1000:.0f} ms)"] = await timeline(
            bench.temporal,
            post_workflow_id(post_id),
            datetime.fromisoformat(post["publish_at"]),
            until_activity="publish",
        )
    statuses = await in_thread(bench.db.statuses, post_ids)
    exactly_once = len(truth) == len(posts) and all(len(by_caption.get(p["caption"], [])) == 1 for p in posts)
    lag = summary_ms(lags) if lags else {}
    p99_s = lag.get("p99_ms", float("inf")) / 1000
    return {
        "path": "api",
        "posts": len(posts),
        "accounts": len(accounts),
        "window_s": params.punctuality_window_s,
        "created_before_first_instant_s": round((first - created_by).total_seconds(), 2),
        "prepared_at_first_instant": prepared_at_first,
        "statuses": statuses,
        "lag": {**lag, "min_ms": round(min(lags) * 1000, 2) if lags else None},
        "published_early": sum(1 for value in lags if value < 0),
        # In the order of publish_at: a pattern over the window (e.g. early posts late) shows here.
        "lags_ms_by_publish_at": [round(value * 1000) for value in lags],
        "slowest_timelines": slowest,
        "exactly_once": exactly_once,
        "sandbox_media": len(truth),
        "notifications": notifications,
        "goals": [
            {
                "goal": f"punctuality p99 under {GOAL_P99_S:g} s",
                "measured": f"p99 {lag.get('p99_ms')} ms (p50 {lag.get('p50_ms')}, max {lag.get('max_ms')})",
                "met": p99_s < GOAL_P99_S and exactly_once and prepared_at_first == len(posts),
            },
            {
                "goal": f"notification latency p99 under {NOTIFICATION_GOAL_P99_S:g} s (transition to receiver)",
                "measured": f"p99 {notification_latency.get('p99_ms')} ms "
                f"(p50 {notification_latency.get('p50_ms')}, max {notification_latency.get('max_ms')}; "
                f"{notifications['events']} events)",
                "met": notification_p99_s < NOTIFICATION_GOAL_P99_S and receiver.refused == 0,
            },
        ],
    }
