"""Re-record the histories that tests/replay/test_replay.py replays:

    make record-histories        # = .venv/bin/python -m tests.replay.record [SCENARIO ...]

Starts its own servers on free ports (a dev server, and the time-skipping server for scenarios with long waits),
runs every scenario of tests/replay/scenarios.py with the current workflow code, and writes
tests/replay/histories/<scenario>.json. Re-record on purpose only, and review the diff: a history that changes
means sleeping posts recorded with the old code would meet different commands.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from chronogram.contracts import SEARCH_ATTRIBUTES
from chronogram.scheduling import start_post_workflow
from chronogram.settings import Settings
from chronogram.temporal import (
    DATA_CONVERTER,
    HEARTBEAT_THROTTLE,
    connect_temporal,
    ensure_search_attributes,
)
from devstack import tools
from devstack.processes import free_port
from devstack.services import TemporalDevServer
from tests.replay.scenarios import SCENARIOS, Scenario
from tests.support.fakes import FakeWorld
from workflows import ScheduledPostWorkflow

HISTORIES = Path(__file__).with_name("histories")


async def record(scenario: Scenario, client: Client, env: WorkflowEnvironment | None) -> Path:
    world = FakeWorld(scenario.script())
    task_queue = f"record-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ScheduledPostWorkflow],
        activities=world.activities(),
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
    ):
        now = await env.get_current_time() if env else None
        from datetime import UTC, datetime

        world.base = now or datetime.now(UTC)
        publish_at = world.base + scenario.delay
        handle = await start_post_workflow(
            client,
            post_id=abs(hash(scenario.name)) % 1_000_000,
            account_id=7,
            username="chronogram_demo",
            post_type=world.script.post_type,
            publish_at=publish_at,
            task_queue=task_queue,
        )
        if scenario.during_sleep is not None:
            await scenario.during_sleep(handle)
        try:
            await handle.result()
        except WorkflowFailureError:
            if not scenario.expect_failure:
                raise
        history = await handle.fetch_history()
    path = HISTORIES / f"{scenario.name}.json"
    path.write_text(json.dumps(json.loads(history.to_json()), indent=1, sort_keys=True) + "\n")
    return path


async def main(names: list[str]) -> int:
    # Scenarios fail activities on purpose; the worker's warning for each would bury the list of recorded files.
    logging.getLogger("temporalio").setLevel(logging.ERROR)
    chosen = [s for s in SCENARIOS if not names or s.name in names]
    HISTORIES.mkdir(parents=True, exist_ok=True)
    server = TemporalDevServer.start(
        sink=sys.stderr,
        port=free_port(),
        ui_port=None,
        db_file=None,
        search_attributes={key.name: key._metadata_type for key in SEARCH_ATTRIBUTES},
    )
    try:
        client = await connect_temporal(Settings(temporal_address=server.address))
        time_skipping = await WorkflowEnvironment.start_time_skipping(
            data_converter=DATA_CONVERTER,
            test_server_existing_path=str(tools.temporal_test_server().path),
            test_server_startup_timeout=timedelta(seconds=90),
        )
        await ensure_search_attributes(time_skipping.client, time_skipping.client.namespace)
        try:
            for scenario in chosen:
                if scenario.needs_time_skipping:
                    path = await record(scenario, time_skipping.client, time_skipping)
                else:
                    path = await record(scenario, client, None)
                print(f"recorded {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
        finally:
            await time_skipping.shutdown()
    finally:
        server.process.stop()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenarios", nargs="*", help="only these (default: all)")
    sys.exit(asyncio.run(main(parser.parse_args().scenarios)))
