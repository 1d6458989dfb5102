"""The worker process: connects to Temporal and runs the publishing workflows and their activities, and, on a task
queue of their own, the notifications' workflows and their dispatcher (chronogram.notifications).

    python worker.py          # or: make dev
    CHRONOGRAM_WORKER_ROLES='["posts"]' python worker.py           # the posts only, and beside it:
    CHRONOGRAM_WORKER_ROLES='["notifications"]' python worker.py   # the notifications in a process of their own

Clients (HTTP, object storage, database) are built once here and handed to the activity classes, so every
activity shares one connection pool and tests can build the same classes with their own clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import Engine
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.client import Client
from temporalio.worker import Worker

from activities import (
    build_activities,
    build_notification_activities,
    held_publish_activities,
    insights_activities,
)
from chronogram.contracts import INSIGHTS_TASK_QUEUE, NOTIFICATIONS_TASK_QUEUE, PUBLISH_TASK_QUEUE, TASK_QUEUE
from chronogram.db import create_schema, make_engine
from chronogram.http_transport import ShardedTransport
from chronogram.instagram import BreakerRegistry
from chronogram.malloc import limit_malloc_arenas
from chronogram.notifications import outbox
from chronogram.notifications.dispatch import Dispatcher
from chronogram.observability import setup_process, setup_telemetry
from chronogram.observability.metrics import count_graph_call, refresh_circuit_gauges, sdk_runtime
from chronogram.observability.tracing import instrument_http_client
from chronogram.observability.worker_endpoint import PolledQueue, worker_endpoint
from chronogram.settings import Settings, WorkerRole, get_settings
from chronogram.storage import make_minio
from chronogram.temporal import HEARTBEAT_THROTTLE, connect_temporal, worker_tuning, workflow_runner
from workflows import NOTIFICATION_WORKFLOWS, WORKFLOWS, PostMetricsWorkflow

log = logging.getLogger("chronogram.worker")
_NOTIFICATION_THREADS = 20
# The notifications' database calls (dispatcher, webhook activities): apart from the publishing activities' calls
# on the event loop's default pool and from slow mail servers on the pool above.
_NOTIFICATION_DB_THREADS = 4
# Webhook requests in flight at once, httpx's default limit; the others wait their turn within their timeout.
_WEBHOOK_CONNECTIONS = 100


SERVICE_NAME = "chronogram-worker"


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    setup_telemetry(SERVICE_NAME)
    sdk = sdk_runtime()
    client = await connect_temporal(settings, runtime=sdk.runtime, patient=True)
    engine = make_engine(settings.database_url)
    create_schema(engine)  # idempotent; whichever of API and worker starts first creates the tables
    outbox.install()  # the posts' changes made here write their events to the outbox
    roles = set(settings.worker_roles)
    async with contextlib.AsyncExitStack() as stack:
        workers: list[Worker] = []
        queues: list[PolledQueue] = []
        scrape: Callable[[], None] = _nothing
        if WorkerRole.POSTS in roles:
            # One circuit breaker per Graph API host for the whole process; its state is in the health checks.
            breakers = BreakerRegistry.from_settings(settings)
            posts, held_publishes, insights = await _post_workers(settings, client, engine, breakers, stack)
            workers += [posts, held_publishes, insights]
            scrape = functools.partial(refresh_circuit_gauges, breakers)
            queues += [
                PolledQueue(TASK_QUEUE, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, lambda: posts.is_running),
                PolledQueue(
                    PUBLISH_TASK_QUEUE,
                    TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
                    lambda: held_publishes.is_running,
                ),
                PolledQueue(
                    INSIGHTS_TASK_QUEUE, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, lambda: insights.is_running
                ),
            ]
        dispatcher: Dispatcher | None = None
        if WorkerRole.NOTIFICATIONS in roles:
            notifications, dispatcher = await _notification_worker(settings, client, engine, stack)
            workers.append(notifications)
            queues.append(
                PolledQueue(
                    NOTIFICATIONS_TASK_QUEUE,
                    TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                    lambda: notifications.is_running,
                )
            )
        # Ready when every worker of this process runs and Temporal sees it polling.
        endpoint = worker_endpoint(
            host=settings.worker_metrics_host,
            port=settings.worker_metrics_port,
            client=client,
            queues=queues,
            sdk=sdk,
            before_scrape=scrape,
        )
        for worker in workers:
            await stack.enter_async_context(worker)
        port = await stack.enter_async_context(endpoint)
        dispatching = None
        if dispatcher is not None:
            dispatching = asyncio.create_task(dispatcher.run(stop), name="notification-dispatcher")
        # Start-up objects (modules, clients) live as long as the process: keeping them out of the full
        # collections shortens the pauses that stall every workflow on this event loop.
        gc.freeze()
        log.info(
            "worker polling task queues %s on %s",
            ", ".join(queue.task_queue for queue in queues),
            settings.temporal_address,
        )
        log.info(
            "metrics, health and readiness on http://%s:%d/metrics, /healthz, /readyz",
            settings.worker_metrics_host,
            port,
        )
        await stop.wait()
        if dispatching is not None:
            await dispatching
        log.info("shutting down: finishing running activities (up to %s)", settings.worker_graceful_shutdown)
    engine.dispose()


def _nothing() -> None:
    pass


async def _post_workers(
    settings: Settings,
    client: Client,
    engine: Engine,
    breakers: BreakerRegistry | None,
    stack: contextlib.AsyncExitStack,
) -> tuple[Worker, Worker, Worker]:
    """The publishing workflows and their activities, the held publishes, and the published posts' insights."""
    timeout = httpx.Timeout(settings.graph_api_timeout_seconds, connect=10.0)
    # One connection per activity slot, all kept alive: with httpx's default of 20 idle connections, a burst of
    # publishes spent a sixth of the worker's time opening and closing connections (bench/README.md). In small
    # pools: one pool's bookkeeping grows with the square of its connections.
    transport = ShardedTransport(connections=settings.worker_max_concurrent_activities)
    # Blocking clients (MinIO, SQLAlchemy) run their activities on this pool; size it to the activity slots so a
    # slow upload never starves a status update.
    executor = stack.enter_context(ThreadPoolExecutor(max_workers=settings.worker_max_concurrent_activities))
    http = await stack.enter_async_context(httpx.AsyncClient(timeout=timeout, transport=transport))
    instrument_http_client(http)
    activities = build_activities(
        settings,
        http=http,
        storage=make_minio(settings),
        engine=engine,
        temporal=client,
        breakers=breakers,
        on_graph_call=count_graph_call,
        publish_task_queue=PUBLISH_TASK_QUEUE,
        insights_task_queue=INSIGHTS_TASK_QUEUE,
    )
    worker = Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=WORKFLOWS,
        activities=activities,
        activity_executor=executor,
        **worker_tuning(settings),
    )
    # Held publishes: asynchronous, each holding its slot (no thread) from ahead of its publish time until its
    # call, as many as a burst has posts; their heartbeats are sent at once (a cancellation of a held call comes
    # back in the answer to one).
    held_publishes = Worker(
        client,
        task_queue=PUBLISH_TASK_QUEUE,
        activities=held_publish_activities(activities),
        max_concurrent_activities=settings.worker_held_publish_slots,
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        graceful_shutdown_timeout=settings.worker_graceful_shutdown,
    )
    # The insights: their own cache (see INSIGHTS_TASK_QUEUE), their reads on the same threads and Graph client.
    insights = Worker(
        client,
        task_queue=INSIGHTS_TASK_QUEUE,
        workflows=[PostMetricsWorkflow],
        activities=insights_activities(activities),
        activity_executor=executor,
        max_cached_workflows=settings.worker_insights_cached_workflows,
        # Never more tasks at once than the cache holds (the SDK refuses it).
        max_concurrent_workflow_tasks=min(settings.worker_insights_cached_workflows, 100),
        graceful_shutdown_timeout=settings.worker_graceful_shutdown,
        workflow_runner=workflow_runner(settings),
    )
    return worker, held_publishes, insights


async def _notification_worker(
    settings: Settings, client: Client, engine: Engine, stack: contextlib.AsyncExitStack
) -> tuple[Worker, Dispatcher]:
    """The notifications' workflows and activities, and the outbox's dispatcher."""
    notification_executor = stack.enter_context(ThreadPoolExecutor(max_workers=_NOTIFICATION_THREADS))
    notification_db = stack.enter_context(ThreadPoolExecutor(max_workers=_NOTIFICATION_DB_THREADS))
    # Webhooks get a client of their own: receivers are arbitrary servers, never the Graph API's pool; no proxy
    # from the environment, no redirects (a redirect could lead past the URL policy). Its connections are the
    # sharded transport's, which replaces one a cancelled delivery left active (httpcore's own pool keeps it,
    # and enough of them would fail every later delivery with PoolTimeout).
    webhook_http = await stack.enter_async_context(
        httpx.AsyncClient(
            timeout=settings.webhook_request_timeout_seconds,
            trust_env=False,
            follow_redirects=False,
            transport=ShardedTransport(connections=_WEBHOOK_CONNECTIONS),
        )
    )
    notifications = Worker(
        client,
        task_queue=NOTIFICATIONS_TASK_QUEUE,
        workflows=NOTIFICATION_WORKFLOWS,
        activities=build_notification_activities(
            settings, http=webhook_http, engine=engine, executor=notification_db
        ),
        # Threads of their own (email, database): a slow mail server never holds a post's activity up.
        activity_executor=notification_executor,
        max_concurrent_activities=_NOTIFICATION_THREADS,
        graceful_shutdown_timeout=settings.worker_graceful_shutdown,
        workflow_runner=workflow_runner(settings),
    )
    return notifications, Dispatcher(settings, client, engine, executor=notification_db)


def main() -> None:
    limit_malloc_arenas()  # before any thread starts
    settings = get_settings()
    setup_process(settings, SERVICE_NAME)  # logs (text or JSON, CHRONOGRAM_LOG_FORMAT), traces, metrics

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_worker(settings, stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
