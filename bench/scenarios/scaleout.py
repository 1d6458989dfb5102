"""7. Scale-out (only when named): a burst of posts due at the same second, created through two API processes
and run by two worker processes on the PostgreSQL app database, with one worker SIGKILLed mid-burst. Every post
must be published exactly once (the sandbox's ground truth); the lag of the posts the dead worker held is
reported beside the others', with what each of them waited for.

    python -m bench --only scaleout --temporal server --db postgres --workers 2 --apis 2

A post "held" by the dead worker is one whose history shows a task lost with it: a workflow task that timed out
(on the dead worker's sticky queue, or started there and never completed) or an activity retried after a timeout.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import TimeoutType
from temporalio.client import Client

from bench.client import Api, make_accounts, new_http, post_body, published_media
from bench.context import Bench, in_thread, wait_for
from bench.procinfo import CpuMeter
from bench.stats import percentile
from chronogram.contracts import post_workflow_id

NAME = "scaleout"
_FINAL = ("published", "failed", "cancelled")


async def run(bench: Bench) -> dict[str, Any]:
    stack = bench.stack
    workers = stack.product_workers()
    if len(workers) < 2 or len(stack.api_urls) < 2 or stack.config.database != "postgres":
        raise RuntimeError(
            "scaleout needs two workers, two APIs and the PostgreSQL app database: "
            "--workers 2 --apis 2 --db postgres (and --temporal server for the production server)"
        )
    params = bench.params
    accounts = await make_accounts(bench.api, bench.sandbox, params.scaleout_accounts, "bench_scale")
    tag = uuid.uuid4().hex[:8]
    instant = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=params.scaleout_lead_s)
    bodies = [
        post_body(
            account_id=accounts[index % len(accounts)].id,
            media_id=bench.media_id,
            publish_at=instant,
            caption=f"bench scaleout {tag} #{index}",
        )
        for index in range(params.scaleout_posts)
    ]
    posts, per_api = await _create_across_apis(bench, bodies)
    post_ids = [int(post["id"]) for post in posts]
    by_caption = {post["caption"]: int(post["id"]) for post in posts}

    async def prepared() -> tuple[bool, str]:
        ready = await in_thread(bench.db.prepared, post_ids)
        until = (instant - datetime.now(UTC)).total_seconds()
        return until <= 0, f"{ready}/{len(post_ids)} prepared, instant in {max(until, 0):.0f} s"

    await wait_for(
        bench.progress, f"{NAME} (preparing)", prepared, give_up_after=params.scaleout_lead_s + 30, interval=1
    )
    prepared_at_instant = await in_thread(bench.db.prepared, post_ids)
    meter = CpuMeter(stack.pids())

    victim = workers[-1]
    # The SDK's default identity, which the worker does not change: it names the worker in every history.
    victim_identity = f"{victim.pid}@{socket.gethostname()}"
    kill_after = max(1, int(len(post_ids) * params.scaleout_kill_at))

    async def enough_published() -> tuple[bool, str]:
        counts = await in_thread(bench.db.statuses, post_ids)
        published = counts.get("published", 0)
        return published >= kill_after, f"{published}/{len(post_ids)} published; kill at {kill_after}"

    await wait_for(bench.progress, f"{NAME} (to the kill)", enough_published, give_up_after=600, interval=0.2)
    killed_at = datetime.now(UTC)
    published_before_kill = (await in_thread(bench.db.statuses, post_ids)).get("published", 0)
    victim.kill()
    bench.progress.say(f"{NAME}: SIGKILLed worker pid {victim.pid} with {published_before_kill} published")

    async def drained() -> tuple[bool, str]:
        counts = await in_thread(bench.db.statuses, post_ids)
        final = sum(counts.get(status, 0) for status in _FINAL)
        return final == len(post_ids), f"{counts.get('published', 0)}/{len(post_ids)} published"

    await wait_for(bench.progress, NAME, drained, give_up_after=900, interval=0.5)
    # Every post in its final status in the database (published, with its permalink and first comment), which
    # the posts waiting out a database activity's timeout reach last.
    all_final_s = (datetime.now(UTC) - instant).total_seconds()
    cpu = meter.read()
    # The stack goes on with as many workers as it had, for whatever scenario comes next.
    await in_thread(stack.replace_worker, victim)

    truth = await published_media(bench.sandbox, accounts)
    captions = Counter(media["caption"] for media in truth)
    containers = Counter(media["container_id"] for media in truth)
    duplicates = sum(count - 1 for count in captions.values() if count > 1) + sum(
        count - 1 for count in containers.values() if count > 1
    )
    exactly_once = len(truth) == len(posts) and set(captions) == set(by_caption) and duplicates == 0
    lag_of = {
        by_caption[media["caption"]]: (
            datetime.fromisoformat(media["published_at"]) - instant
        ).total_seconds()
        for media in truth
        if media["caption"] in by_caption
    }
    closed = await _closed(bench, post_ids, instant)
    done_of = {post_id: (closed[post_id] - instant).total_seconds() for post_id in closed}
    losses = await _losses(bench.temporal, post_ids, killed_at, victim_identity)
    held = {post_id for post_id, reasons in losses.items() if reasons["lost"]}
    ran_there = {post_id for post_id, reasons in losses.items() if reasons["ran_on_victim"]}
    reasons = Counter(reason for post_id in held for reason in losses[post_id]["lost"])
    held_lags = [lag_of[post_id] for post_id in held if post_id in lag_of]
    other_lags = [lag for post_id, lag in lag_of.items() if post_id not in held]
    held_done = [done_of[post_id] for post_id in held if post_id in done_of]
    other_done = [done for post_id, done in done_of.items() if post_id not in held]
    slowest_held = max(held, key=lambda post_id: lag_of.get(post_id, 0.0), default=None)
    result: dict[str, Any] = {
        "path": "api",
        "posts": len(posts),
        "accounts": len(accounts),
        "apis": len(stack.api_urls),
        "posts_created_per_api": per_api,
        "workers": len(workers),
        "instant": instant.isoformat(),
        "prepared_at_instant": prepared_at_instant,
        "killed_worker_pid": victim.pid,
        "killed_at_s_after_instant": round((killed_at - instant).total_seconds(), 3),
        "published_before_kill": published_before_kill,
        "statuses": await in_thread(bench.db.statuses, post_ids),
        "all_final_s_after_instant": round(all_final_s, 1),
        "sandbox_media": len(truth),
        "duplicates": duplicates,
        "exactly_once": exactly_once,
        "posts_that_ran_on_the_killed_worker": len(ran_there),
        "posts_held_by_the_killed_worker": len(held),
        "what_they_lost": dict(reasons),
        "lag_all": _lags(list(lag_of.values())),
        "lag_held_by_killed_worker": _lags(held_lags),
        "lag_others": _lags(other_lags),
        # From the instant to the workflow's completion (first comment posted, post marked published): what a
        # task lost after media_publish costs shows here, not in the publish lag.
        "completion_held_by_killed_worker": _lags(held_done),
        "completion_others": _lags(other_done),
        "slowest_held_post": None
        if slowest_held is None
        else {
            "post_id": slowest_held,
            "lag_s": lag_of.get(slowest_held),
            "lost": losses[slowest_held]["lost"],
        },
        "cpu_during_drain": cpu.to_json(),
    }
    result["goals"] = [
        {
            "goal": "every post published exactly once with a worker SIGKILLed mid-burst",
            "measured": f"{len(truth)} media for {len(posts)} posts, {duplicates} duplicates, "
            f"{len(held)} posts held by the killed worker",
            "met": exactly_once,
        },
    ]
    bench.progress.say(
        f"{NAME}: exactly once {exactly_once}; {len(held)} posts held by the killed worker, lag p99 "
        f"{result['lag_held_by_killed_worker']['p99_s']} s (others {result['lag_others']['p99_s']} s)"
    )
    return result


async def _create_across_apis(
    bench: Bench, bodies: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[int]]:
    """POST /v1/posts for every body, the clients spread evenly over the API processes; the posts in the order of
    ``bodies`` and how many each API created."""
    urls = bench.stack.api_urls
    created: list[dict[str, Any] | None] = [None] * len(bodies)
    per_api = [0] * len(urls)
    indexes = iter(range(len(bodies)))

    async def client(api_index: int) -> None:
        async with new_http() as http:
            api = Api(http, urls[api_index], bench.stack.api_key)
            for index in indexes:
                _latency, created[index] = await api.create_post(bodies[index])
                per_api[api_index] += 1
                bench.progress.update(f"{NAME}: {sum(per_api)}/{len(bodies)} posts created")

    async with asyncio.TaskGroup() as group:
        for number in range(min(bench.params.create_concurrency, len(bodies))):
            group.create_task(client(number % len(urls)))
    return [post for post in created if post is not None], per_api


async def _closed(bench: Bench, post_ids: list[int], instant: datetime) -> dict[int, datetime]:
    """Each post's workflow close time, once visibility lists them all (it trails the histories)."""
    wanted = {post_workflow_id(post_id): post_id for post_id in post_ids}
    since = (instant - timedelta(seconds=5)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    query = f"WorkflowType='ScheduledPostWorkflow' AND ExecutionStatus='Completed' AND CloseTime >= '{since}'"
    closed: dict[int, datetime] = {}

    async def listed() -> tuple[bool, str]:
        closed.clear()
        async for execution in bench.temporal.list_workflows(query):
            if execution.id in wanted and execution.close_time is not None:
                closed[wanted[execution.id]] = execution.close_time
        return len(closed) == len(wanted), f"{len(closed)}/{len(wanted)} workflows completed"

    await wait_for(bench.progress, f"{NAME} (closing)", listed, give_up_after=120, interval=1)
    return closed


async def _losses(
    client: Client, post_ids: list[int], killed_at: datetime, victim: str
) -> dict[int, dict[str, Any]]:
    """For each post: whether any of its tasks ran on the killed worker, and what it lost with it."""
    limit = asyncio.Semaphore(8)

    async def one(post_id: int) -> tuple[int, dict[str, Any]]:
        async with limit:
            history = await client.get_workflow_handle(post_workflow_id(post_id)).fetch_history()
        activities: dict[int, str] = {}
        lost: list[str] = []
        ran_on_victim = False
        for event in history.events:
            when = event.event_time.ToDatetime(tzinfo=UTC)
            if event.HasField("activity_task_scheduled_event_attributes"):
                activities[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
            elif event.HasField("workflow_task_started_event_attributes"):
                ran_on_victim |= event.workflow_task_started_event_attributes.identity == victim
            elif event.HasField("workflow_task_timed_out_event_attributes") and when >= killed_at:
                kind = TimeoutType.Name(event.workflow_task_timed_out_event_attributes.timeout_type)
                lost.append(f"workflow task ({_short(kind)})")
            elif event.HasField("activity_task_started_event_attributes"):
                started = event.activity_task_started_event_attributes
                ran_on_victim |= started.identity == victim
                failure = started.last_failure
                if started.attempt > 1 and failure.HasField("timeout_failure_info") and when >= killed_at:
                    kind = TimeoutType.Name(failure.timeout_failure_info.timeout_type)
                    lost.append(
                        f"activity {activities.get(started.scheduled_event_id, '?')} ({_short(kind)})"
                    )
            elif event.HasField("activity_task_timed_out_event_attributes") and when >= killed_at:
                attributes = event.activity_task_timed_out_event_attributes
                lost.append(
                    f"activity {activities.get(attributes.scheduled_event_id, '?')} (timed out for good)"
                )
        return post_id, {"lost": lost, "ran_on_victim": ran_on_victim}

    return dict(await asyncio.gather(*(one(post_id) for post_id in post_ids)))


def _short(timeout_type: str) -> str:
    return timeout_type.removeprefix("TIMEOUT_TYPE_").lower().replace("_", "-")


def _lags(lags: list[float]) -> dict[str, Any]:
    if not lags:
        return {"count": 0, "p50_s": None, "p99_s": None, "max_s": None}
    return {
        "count": len(lags),
        "p50_s": round(percentile(lags, 50), 3),
        "p99_s": round(percentile(lags, 99), 3),
        "max_s": round(max(lags), 3),
    }
