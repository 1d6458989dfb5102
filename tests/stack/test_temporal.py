"""The Temporal servers the project brings up really run workflows."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from chronogram.contracts import SEARCH_ATTRIBUTES
from tests.stack.smoke_workflows import GreetingWorkflow, GreetInput, LongSleepWorkflow, compose_greeting


async def test_workflow_with_an_activity_completes_on_the_dev_server(temporal_client: Client) -> None:
    task_queue = f"smoke-{uuid.uuid4()}"
    async with Worker(
        temporal_client, task_queue=task_queue, workflows=[GreetingWorkflow], activities=[compose_greeting]
    ):
        handle = await temporal_client.start_workflow(
            GreetingWorkflow.run,
            GreetInput(name="Chronogram"),
            id=f"smoke-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        assert await handle.result() == "Hello, Chronogram! (from activity attempt 1)"
    # The server persisted a real history: the activity ran as its own scheduled task.
    history = await handle.fetch_history()
    activity_events = [e for e in history.events if e.HasField("activity_task_completed_event_attributes")]
    assert len(activity_events) == 1


async def test_dev_server_has_the_project_search_attributes(temporal_client: Client) -> None:
    from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

    listed = await temporal_client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=temporal_client.namespace)
    )
    assert {key.name for key in SEARCH_ATTRIBUTES} <= set(listed.custom_attributes)


async def test_thirty_day_sleep_completes_in_seconds_with_time_skipping(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    task_queue = f"smoke-{uuid.uuid4()}"
    started = time.monotonic()
    async with Worker(client, task_queue=task_queue, workflows=[LongSleepWorkflow]):
        result = await client.execute_workflow(
            LongSleepWorkflow.run, 30, id=f"sleep-{uuid.uuid4()}", task_queue=task_queue
        )
    elapsed = time.monotonic() - started
    assert result.woke_at - result.started_at >= timedelta(days=30)
    assert elapsed < 30, f"time skipping did not skip: 30 days took {elapsed:.1f} s of wall time"
