"""The worker process: connects to Temporal and runs the publishing workflows and their activities.

    python worker.py          # or: make dev

Clients (HTTP, object storage, database) are built once here and handed to the activity classes, so every
activity shares one connection pool and tests can build the same classes with their own clients.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

import httpx
from temporalio.worker import Worker

from activities import build_activities
from chronogram.contracts import TASK_QUEUE
from chronogram.db import create_schema, make_engine
from chronogram.http_transport import ShardedTransport
from chronogram.instagram import BreakerRegistry
from chronogram.malloc import limit_malloc_arenas
from chronogram.settings import Settings, get_settings
from chronogram.storage import make_minio
from chronogram.temporal import connect_temporal, worker_tuning
from workflows import WORKFLOWS

log = logging.getLogger("chronogram.worker")


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    client = await connect_temporal(settings)
    engine = make_engine(settings.database_url)
    create_schema(engine)  # idempotent; whichever of API and worker starts first creates the tables
    timeout = httpx.Timeout(settings.graph_api_timeout_seconds, connect=10.0)
    # One connection per activity slot, all kept alive: with httpx's default of 20 idle connections, a burst of
    # publishes spent a sixth of the worker's time opening and closing connections (bench/README.md). In small
    # pools: one pool's bookkeeping grows with the square of its connections.
    transport = ShardedTransport(connections=settings.worker_max_concurrent_activities)
    # One circuit breaker per Graph API host for the whole process; snapshot() is its state for health checks.
    breakers = BreakerRegistry.from_settings(settings)
    # Blocking clients (MinIO, SQLAlchemy) run their activities on this pool; size it to the activity slots so a
    # slow upload never starves a status update.
    with ThreadPoolExecutor(max_workers=settings.worker_max_concurrent_activities) as executor:
        async with httpx.AsyncClient(timeout=timeout, transport=transport) as http:
            worker = Worker(
                client,
                task_queue=TASK_QUEUE,
                workflows=WORKFLOWS,
                activities=build_activities(
                    settings, http=http, storage=make_minio(settings), engine=engine, breakers=breakers
                ),
                activity_executor=executor,
                **worker_tuning(settings),
            )
            async with worker:
                # Start-up objects (modules, clients) live as long as the process: keeping them out of the full
                # collections shortens the pauses that stall every workflow on this event loop.
                gc.freeze()
                log.info("worker polling task queue %s on %s", TASK_QUEUE, settings.temporal_address)
                await stop.wait()
                log.info(
                    "shutting down: finishing running activities (up to %s)",
                    settings.worker_graceful_shutdown,
                )
    engine.dispose()


def main() -> None:
    limit_malloc_arenas()  # before any thread starts
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # A line per Graph API call (six per post) buries the worker's own lines; each call is already an activity
    # in the post's history, and failures are logged with their Graph error.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = get_settings()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_worker(settings, stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
