"""The bare ceilings the product is compared with: a trivial workflow (the cost of ``client.start_workflow``
alone) and a burst workflow doing as many no-op activities and timers as a post's workflow does.

They run on their own task queue, in their own worker process with the product worker's settings
(``CHRONOGRAM_WORKER_*``, including the workflow runner), against the same dev server:

    python -m bench.baseline            # started by bench.stack; prints a line once it polls

Its one activity that does something, GraphCalls, makes a post's Graph calls after its publish time (publish,
permalink, first comment) through the product's own client and transport: the bare ceiling with the calls put back
says how much of a burst's drain the calls themselves cost on this machine (bench.scenarios.burst).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path

import httpx
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from bench.bare_workflows import GRAPH_CALLS, BareBurstWorkflow, GraphCallsInput, TrivialWorkflow, noop
from chronogram.http_transport import ShardedTransport
from chronogram.instagram import GraphAPIError, GraphClient
from chronogram.settings import Settings
from chronogram.temporal import worker_tuning

TASK_QUEUE = "bench-bare"
READY_LINE = "bare worker polling"
TOKENS_FILE = "bare-graph-tokens.json"
"""In the bench's work directory: {ig_user_id: access token} of the sandbox accounts the bare workflows call for.
Tokens stay out of the workflows' inputs, as the product's do; its worker reads them from its database."""


class GraphCalls:
    """A post's Graph calls after its publish time, as the product's worker makes them (its client, its
    transport, as many connections as activity slots); a failed call is logged, not raised: the bench counts the
    sandbox's published media."""

    def __init__(self, graph: GraphClient, tokens_file: Path) -> None:
        self._graph = graph
        self._tokens_file = tokens_file
        self._tokens: dict[str, str] = {}

    def _token(self, ig_user_id: str) -> str:
        if ig_user_id not in self._tokens:
            self._tokens = json.loads(self._tokens_file.read_text())
        return self._tokens[ig_user_id]

    @activity.defn(name=GRAPH_CALLS)
    async def graph_calls(self, request: GraphCallsInput) -> int:
        token = self._token(request.ig_user_id)
        try:
            media = await self._graph.publish(
                ig_user_id=request.ig_user_id, container_id=request.container_id, access_token=token
            )
            await self._graph.get_media(media_id=media.id, access_token=token)
            await self._graph.create_comment(media_id=media.id, message="first!", access_token=token)
        except (GraphAPIError, httpx.HTTPError) as error:
            activity.logger.warning("bare Graph calls for %s failed: %r", request.container_id, error)
        return request.step


async def connect_plain(settings: Settings) -> Client:
    """A client with the SDK's defaults: no pydantic converter, no tracing interceptor, nothing of ours."""
    return await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)


async def run_bare_worker(
    settings: Settings, task_queue: str, tokens_file: Path, stop: asyncio.Event
) -> None:
    client = await connect_plain(settings)
    transport = ShardedTransport(connections=settings.worker_max_concurrent_activities)
    timeout = httpx.Timeout(settings.graph_api_timeout_seconds, connect=10.0)
    async with httpx.AsyncClient(timeout=timeout, transport=transport) as http:
        calls = GraphCalls(GraphClient.from_settings(http, settings), tokens_file)
        worker = Worker(
            client,
            task_queue=task_queue,
            workflows=[TrivialWorkflow, BareBurstWorkflow],
            activities=[noop, calls.graph_calls],
            **worker_tuning(settings),
        )
        async with worker:
            print(f"{READY_LINE} {task_queue} on {settings.temporal_address}", flush=True)
            await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__)
    parser.add_argument("--task-queue", default=TASK_QUEUE)
    parser.add_argument("--tokens-file", type=Path, default=Path(TOKENS_FILE), help="written by the bench")
    args = parser.parse_args(argv)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_bare_worker(Settings(), args.task_queue, args.tokens_file, stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
