"""The bare ceilings the product is compared with: a trivial workflow (the cost of ``client.start_workflow``
alone) and a burst workflow doing as many no-op activities and timers as a post's workflow does.

They run on their own task queue, in their own worker process with the product worker's settings
(``CHRONOGRAM_WORKER_*``, including the workflow runner), against the same dev server:

    python -m bench.baseline            # started by bench.stack; prints a line once it polls
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from temporalio.client import Client
from temporalio.worker import Worker

from bench.bare_workflows import BareBurstWorkflow, TrivialWorkflow, noop
from chronogram.settings import Settings
from chronogram.temporal import worker_tuning

TASK_QUEUE = "bench-bare"
READY_LINE = "bare worker polling"


async def connect_plain(settings: Settings) -> Client:
    """A client with the SDK's defaults: no pydantic converter, no tracing interceptor, nothing of ours."""
    return await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)


async def run_bare_worker(settings: Settings, task_queue: str, stop: asyncio.Event) -> None:
    client = await connect_plain(settings)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[TrivialWorkflow, BareBurstWorkflow],
        activities=[noop],
        **worker_tuning(settings),
    )
    async with worker:
        print(f"{READY_LINE} {task_queue} on {settings.temporal_address}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__)
    parser.add_argument("--task-queue", default=TASK_QUEUE)
    args = parser.parse_args(argv)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_bare_worker(Settings(), args.task_queue, stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
