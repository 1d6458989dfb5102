"""7. Chaos: posts on many accounts due over a window, while workers are killed with SIGKILL several times (two
workers run, as in a deployment; each killed one is replaced at once), the Temporal dev server is restarted once, about a tenth of all Graph API calls fail
(the sandbox's seeded faults: server errors, gateway pages, dropped connections, calls that are done and then
answer an error or lose their answer, short throttles), and clients reschedule and cancel some posts.

Checks on the sandbox's ground truth: every post published exactly once (one media with its caption, one first
comment on it) or cancelled (no media); and the publish lag (the sandbox's commit of media_publish minus the
post's final publish_at) p99 under 30 s. The slowest posts' histories say where their time went.

Faults that hold a call past the client's timeout (hang) are left out: each costs the timeout (60 s and more on
media_publish) by design, and tells nothing the others do not.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import Client

from bench.client import ApiFailed, make_accounts, post_body, published_media
from bench.context import Bench, create_posts, in_thread, wait_for
from bench.histories import steps_after
from bench.stats import summary_ms
from chronogram.contracts import post_workflow_id

NAME = "chaos"
GOAL_P99_S = 30.0
# Each fault hits a matching call with its chance, tried in this order (one fault per call): together about the
# asked share of all calls. Weights are shares of that total.
FAULT_MIX: list[tuple[float, dict[str, Any]]] = [
    (0.40, {"action": "error", "code": 2, "http_status": 500, "is_transient": True}),
    (0.15, {"action": "html_502"}),
    (0.15, {"action": "drop"}),
    (0.10, {"action": "commit_then_drop"}),
    (0.10, {"action": "commit_then_error", "code": 2, "http_status": 500, "is_transient": True}),
    # An app throttle that announces a short wait (Retry-After): one that announces minutes delays by minutes.
    (
        0.10,
        {"action": "error", "code": 4, "http_status": 400, "is_transient": True, "retry_after_seconds": 5},
    ),
]


@dataclass
class Disruptions:
    worker_kills: list[dict[str, float]] = field(default_factory=list)
    temporal_restart: dict[str, float] = field(default_factory=dict)
    reschedules: list[dict[str, Any]] = field(default_factory=list)
    cancels: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


async def run(bench: Bench) -> dict[str, Any]:
    params = bench.params
    load_before = os.getloadavg()
    accounts = await make_accounts(bench.api, bench.sandbox, params.chaos_accounts, "bench_chaos")
    tag = uuid.uuid4().hex[:8]
    rng = random.Random(7)  # the same instants, victims and new times every run
    first = datetime.now(UTC) + timedelta(seconds=params.chaos_lead_s)
    offsets = sorted(rng.uniform(0, params.chaos_window_s) for _ in range(params.chaos_posts))
    bodies = [
        post_body(
            account_id=accounts[index % len(accounts)].id,
            media_id=bench.media_id,
            publish_at=first + timedelta(seconds=offset),
            caption=f"bench chaos {tag} #{index}",
        )
        for index, offset in enumerate(offsets)
    ]
    # Two workers, as a deployment runs: a killed one's posts go on on the other while it is replaced.
    await asyncio.to_thread(bench.stack.start_spare_worker)
    faults = await _arm_faults(bench, params.chaos_fault_share)
    calls_before = len(await bench.sandbox.calls())
    try:
        posts, _latencies = await create_posts(bench, bodies, label=NAME)
        post_ids = [int(post["id"]) for post in posts]
        disruptions = Disruptions()
        chaos = asyncio.create_task(_disrupt(bench, posts, first, rng, disruptions))
        created_before_window_s = round((first - datetime.now(UTC)).total_seconds(), 1)

        async def window_open() -> tuple[bool, str]:
            until = (first - datetime.now(UTC)).total_seconds()
            return until <= 0, f"window opens in {max(until, 0):.0f} s"

        await wait_for(bench.progress, NAME, window_open, give_up_after=params.chaos_lead_s + 30, interval=1)
        # Posts not prepared by then count their preparation in their lag (production prepares 10 min ahead).
        prepared_at_window = await in_thread(bench.db.prepared, post_ids)
        last = first + timedelta(seconds=params.chaos_window_s + 60)

        async def final() -> tuple[bool, str]:
            counts = await in_thread(bench.db.statuses, post_ids)
            done = sum(counts.get(status, 0) for status in ("published", "failed", "cancelled"))
            until = (last - datetime.now(UTC)).total_seconds()
            window = f"window ends in {until:.0f} s" if until > 0 else "window over"
            return done == len(post_ids) and chaos.done(), (
                f"{counts.get('published', 0)} published, {counts.get('cancelled', 0)} cancelled, "
                f"{counts.get('failed', 0)} failed of {len(post_ids)}; {window}"
            )

        await wait_for(
            bench.progress, NAME, final, give_up_after=params.chaos_lead_s + params.chaos_window_s + 900
        )
        await chaos
        await _all_closed(bench, post_ids)
    finally:
        hits = {fault["id"]: fault for fault in await bench.sandbox.faults()}
        await bench.sandbox.clear_faults()
        await asyncio.to_thread(bench.stack.stop_spare_worker)
    calls = len(await bench.sandbox.calls()) - calls_before
    figures = await _figures(bench, posts, accounts, disruptions, faults, hits, calls, load_before)
    return {
        **figures,
        "created_before_window_s": created_before_window_s,
        "prepared_at_window_open": prepared_at_window,
    }


async def _arm_faults(bench: Bench, share: float) -> list[dict[str, Any]]:
    """Each fault's chance among the calls the earlier ones let through, so that the shares come out as weighed."""
    armed = []
    left = 1.0
    for weight, spec in FAULT_MIX:
        chance = min(1.0, share * weight / left)
        armed.append(await bench.sandbox.add_fault(count=None, probability=round(chance, 5), **spec))
        left -= share * weight
    return armed


async def _disrupt(
    bench: Bench, posts: list[dict[str, Any]], first: datetime, rng: random.Random, log: Disruptions
) -> None:
    """Worker kills spread over the window, the Temporal restart in its middle (between two kills), and the
    clients' reschedules and cancels, each some seconds before the post's time (while it is still scheduled)."""
    params = bench.params
    window = params.chaos_window_s
    actions: list[tuple[float, Any]] = []
    for index in range(params.chaos_kills):
        actions.append((window * (index + 0.5) / params.chaos_kills, ("kill", index)))
    actions.append((window * 0.5 + window / params.chaos_kills / 4, ("restart", 0)))
    victims = rng.sample(posts, params.chaos_reschedules + params.chaos_cancels)
    for post in victims[: params.chaos_reschedules]:
        due = (datetime.fromisoformat(post["publish_at"]) - first).total_seconds()
        moved = rng.choice((-1, 1)) * rng.uniform(10, 60)
        actions.append((max(0.0, due - rng.uniform(8, 30)), ("reschedule", (post, moved))))
    for post in victims[params.chaos_reschedules :]:
        due = (datetime.fromisoformat(post["publish_at"]) - first).total_seconds()
        actions.append((max(0.0, due - rng.uniform(5, 30)), ("cancel", post)))
    actions.sort(key=lambda action: action[0])
    pending: list[asyncio.Task[None]] = []
    for at, (kind, what) in actions:
        wait = (first + timedelta(seconds=at) - datetime.now(UTC)).total_seconds()
        if wait > 0:
            await asyncio.sleep(wait)
        if kind == "kill":
            # The two workers in turn: each kill takes the one that has been up longest.
            replaced = await asyncio.to_thread(bench.stack.kill_and_restart_worker, spare=what % 2 == 1)
            log.worker_kills.append({"at_s": round(at, 1), "replacement_polling_after_s": round(replaced, 2)})
            bench.progress.say(
                f"{NAME}: a worker killed at +{at:.0f} s, its replacement polled {replaced:.1f} s later"
            )
        elif kind == "restart":
            away = await asyncio.to_thread(bench.stack.restart_temporal)
            log.temporal_restart = {"at_s": round(at, 1), "frontend_away_s": round(away, 2)}
            bench.progress.say(f"{NAME}: Temporal restarted at +{at:.0f} s, away {away:.1f} s")
        else:
            # Signals go through the API concurrently, as clients send them; a refusal is a figure.
            pending.append(asyncio.create_task(_client_change(bench, kind, what, log)))
    if pending:
        await asyncio.gather(*pending)


async def _client_change(bench: Bench, kind: str, what: Any, log: Disruptions) -> None:
    post: dict[str, Any] = what[0] if kind == "reschedule" else what
    path = f"/v1/posts/{post['id']}"
    for attempt in range(6):  # the API answers 503 while Temporal restarts: a client retries
        try:
            if kind == "reschedule":
                # Later, or earlier but never into the past (a time in the past is refused).
                moved = datetime.fromisoformat(post["publish_at"]) + timedelta(seconds=what[1])
                new_time = max(moved, datetime.now(UTC) + timedelta(seconds=12))
                await bench.api.request("PATCH", path, json={"publish_at": new_time.isoformat()})
                log.reschedules.append(
                    {"post": post["id"], "to": new_time.isoformat(), "attempts": attempt + 1}
                )
            else:
                await bench.api.request("POST", f"{path}/cancel", expect=202, json={"reason": "chaos"})
                log.cancels.append({"post": post["id"], "attempts": attempt + 1})
            return
        except ApiFailed as error:
            if " 503" not in str(error) or attempt == 5:
                log.refused.append(f"{kind} {post['id']}: {str(error)[:160]}")
                return
            await asyncio.sleep(2)


async def _all_closed(bench: Bench, post_ids: list[int]) -> None:
    """Posts are marked published before the first comment: wait for every run to close before counting them."""
    wanted = {post_workflow_id(post_id) for post_id in post_ids}

    async def closed() -> tuple[bool, str]:
        done = await _closed_ids(bench.temporal, wanted)
        return len(done) == len(wanted), f"{len(done)}/{len(wanted)} runs closed"

    await wait_for(bench.progress, f"{NAME} (closing)", closed, give_up_after=600, interval=2)


async def _closed_ids(client: Client, wanted: set[str]) -> set[str]:
    done: set[str] = set()
    query = "WorkflowType='ScheduledPostWorkflow' AND ExecutionStatus!='Running'"
    async for execution in client.list_workflows(query):
        if execution.id in wanted:
            done.add(execution.id)
    return done


async def _figures(
    bench: Bench,
    posts: list[dict[str, Any]],
    accounts: list[Any],
    log: Disruptions,
    faults: list[dict[str, Any]],
    hits: dict[str, dict[str, Any]],
    calls: int,
    load_before: tuple[float, float, float],
) -> dict[str, Any]:
    truth = await published_media(bench.sandbox, accounts)
    by_caption: dict[str, list[dict[str, Any]]] = {}
    for media in truth:
        by_caption.setdefault(media["caption"], []).append(media)
    statuses: dict[str, int] = {}
    wrong: list[str] = []
    comments_wrong: list[str] = []
    lags: list[tuple[float, int, datetime]] = []
    for post in posts:
        final = await bench.api.request("GET", f"/v1/posts/{post['id']}")
        status = final["status"]
        statuses[status] = statuses.get(status, 0) + 1
        found = by_caption.get(post["caption"], [])
        if status == "cancelled":
            if found:
                wrong.append(f"post {post['id']} cancelled but {len(found)} media published")
            continue
        if status != "published" or len(found) != 1:
            wrong.append(f"post {post['id']} {status} with {len(found)} media: {final.get('error_message')}")
            continue
        if len(found[0].get("comments", [])) != 1:
            comments_wrong.append(f"post {post['id']}: {len(found[0].get('comments', []))} first comments")
        publish_at = datetime.fromisoformat(final["publish_at"])
        lag = (datetime.fromisoformat(found[0]["published_at"]) - publish_at).total_seconds()
        lags.append((lag, int(post["id"]), publish_at))
    values = [lag for lag, _id, _at in lags]
    lag_summary = summary_ms(values) if values else {}
    p99_s = lag_summary.get("p99_ms", float("inf")) / 1000
    slowest: dict[str, list[str]] = {}
    for lag, post_id, publish_at in sorted(lags, reverse=True)[:5]:
        slowest[f"post {post_id} (lag {lag:.1f} s)"] = await steps_after(
            bench.temporal, post_workflow_id(post_id), publish_at
        )
    fault_hits = {
        f"{fault['action']}" + (f" {fault.get('code')}" if fault.get("code") else ""): hits.get(
            fault["id"], {}
        ).get("hits", 0)
        for fault in faults
    }
    faulted = sum(fault_hits.values())
    exactly_once = not wrong
    comments_once = not comments_wrong
    return {
        "path": "api",
        "posts": len(posts),
        "accounts": len(accounts),
        "window_s": bench.params.chaos_window_s,
        "statuses": statuses,
        "disruptions": {
            "worker_kills": log.worker_kills,
            "temporal_restart": log.temporal_restart,
            "reschedules": len(log.reschedules),
            "cancels": len(log.cancels),
            "client_changes_refused": log.refused,
        },
        "graph_calls": calls,
        "faulted_calls": faulted,
        "faulted_share": round(faulted / calls, 3) if calls else None,
        "fault_hits": fault_hits,
        "lag": lag_summary,
        "over_goal": sum(1 for value in values if value >= GOAL_P99_S),
        "lags_s_sorted": [round(value, 1) for value in sorted(values, reverse=True)[:20]],
        "slowest_steps": slowest,
        "wrong": wrong[:20],
        "first_comments_wrong": comments_wrong[:20],
        "load_average_before": [round(value, 2) for value in load_before],
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
        "goals": [
            {
                "goal": "every post published exactly once or cancelled (sandbox ground truth)",
                "measured": f"{statuses}; {len(wrong)} wrong",
                "met": exactly_once,
            },
            {
                "goal": "every published post's first comment exactly once",
                "measured": f"{len(comments_wrong)} posts without exactly one",
                "met": comments_once,
            },
            {
                "goal": f"publish lag p99 under {GOAL_P99_S:g} s under chaos",
                "measured": f"p99 {lag_summary.get('p99_ms')} ms (p50 {lag_summary.get('p50_ms')}, max "
                f"{lag_summary.get('max_ms')}; {faulted} of {calls} calls faulted, "
                f"{len(log.worker_kills)} kills, 1 Temporal restart)",
                "met": p99_s < GOAL_P99_S,
            },
        ],
    }
