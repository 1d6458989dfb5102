"""The worker's operational endpoint: ``/metrics`` (the product's and the Temporal SDK's), ``/healthz`` (the process
answers) and ``/readyz`` (Temporal answers, and each of the process's workers runs and is among its task queue's
pollers)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from chronogram.observability.endpoint import Reply, serve
from chronogram.observability.metrics import CONTENT_TYPE_LATEST, SdkMetrics, render

__all__ = ["PolledQueue", "pollers", "worker_endpoint"]

_CHECK_TIMEOUT_SECONDS = 3.0


async def pollers(client: Client, task_queue: str, task_type: TaskQueueType.ValueType) -> list[str]:
    """The identities of the workers Temporal has seen polling ``task_queue`` for ``task_type`` tasks lately."""
    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
            task_queue_type=task_type,
        ),
        timeout=timedelta(seconds=_CHECK_TIMEOUT_SECONDS),
    )
    return [poller.identity for poller in described.pollers]


@dataclass(frozen=True)
class PolledQueue:
    """One of the process's workers: the task queue it polls, for which kind of task, and whether it runs."""

    task_queue: str
    task_type: TaskQueueType.ValueType
    running: Callable[[], bool]


@asynccontextmanager
async def worker_endpoint(
    *,
    host: str,
    port: int,
    client: Client,
    queues: Sequence[PolledQueue],
    sdk: SdkMetrics | None,
    before_scrape: Callable[[], None] = lambda: None,
) -> AsyncIterator[int]:
    """Serve the endpoints while the block runs; yields the bound port. ``before_scrape`` refreshes gauges read
    at scrape time (run in a thread)."""

    async def metrics() -> Reply:
        def rendered() -> bytes:
            before_scrape()
            return render([sdk.scrape()] if sdk is not None else [])

        return Reply(200, await asyncio.to_thread(rendered), CONTENT_TYPE_LATEST)

    async def healthz() -> Reply:
        return _json(200, {"status": "ok"})

    async def readyz() -> Reply:
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(client.service_client.check_health(), _CHECK_TIMEOUT_SECONDS)
            checks["temporal"] = "ok"
        except Exception as error:
            checks["temporal"] = f"unavailable: {type(error).__name__}"
        if checks["temporal"] != "ok":
            checks["polling"] = "unknown"
        else:
            checks["polling"] = await _polling(client, queues)
        ready = all(value == "ok" for value in checks.values())
        return _json(200 if ready else 503, {"status": "ok" if ready else "unavailable", "checks": checks})

    async with serve(host, port, {"/metrics": metrics, "/healthz": healthz, "/readyz": readyz}) as bound:
        yield bound


async def _polling(client: Client, queues: Sequence[PolledQueue]) -> str:
    """ "ok" when every worker runs and Temporal lists it among its queue's pollers, else what is wrong first."""
    for queue in queues:
        if not queue.running():
            return f"the worker of {queue.task_queue} is not running"
        try:
            seen = await pollers(client, queue.task_queue, queue.task_type)
        except Exception as error:
            return f"unknown: {type(error).__name__}"
        if client.identity not in seen:
            return f"not among the pollers of {queue.task_queue}"
    return "ok"


def _json(status: int, body: object) -> Reply:
    return Reply(status, json.dumps(body).encode(), "application/json")
