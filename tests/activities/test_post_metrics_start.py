"""When a published post's PostMetricsWorkflow takes its first task (activities.metrics.first_task_delay), and how
a start ahead of the publish time is replaced when the post went out at another time (PostMetricsStarter)."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus

from activities.metrics import PostMetricsStarter, first_task_delay
from chronogram.contracts import PostMetricsInput, PostRef, post_metrics_workflow_id

PUBLISHED_AT = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def test_a_start_at_publish_delays_the_first_task_until_a_minute_before_the_first_reading() -> None:
    assert first_task_delay(PUBLISHED_AT, PUBLISHED_AT + timedelta(seconds=2)) == timedelta(
        minutes=58, seconds=58
    )


def test_a_start_within_the_last_minute_before_the_first_reading_is_not_delayed() -> None:
    assert first_task_delay(PUBLISHED_AT, PUBLISHED_AT + timedelta(minutes=59, seconds=30)) == timedelta(0)


def test_a_start_after_the_first_reading_was_due_is_not_delayed() -> None:
    assert first_task_delay(PUBLISHED_AT, PUBLISHED_AT + timedelta(hours=3)) == timedelta(0)


# --- PostMetricsStarter on the dev server: started ahead, then replaced when the post went out at another time ---


def _unique_post_id() -> int:
    return secrets.randbelow(10**12) + 10**12


async def _runs(client: Client, post_id: int) -> list[tuple[WorkflowExecutionStatus | None, datetime | None]]:
    """Every run of the post's insights workflow, oldest first: its status and when its first task is due."""
    executions = [
        execution
        async for execution in client.list_workflows(f"WorkflowId = '{post_metrics_workflow_id(post_id)}'")
    ]
    executions.sort(key=lambda execution: execution.start_time)
    return [(execution.status, execution.execution_time) for execution in executions]


async def _wait_for_runs(client: Client, post_id: int, count: int) -> list[tuple[Any, datetime | None]]:
    for _ in range(100):  # visibility is eventually consistent
        runs = await _runs(client, post_id)
        if len(runs) == count and all(status is not None for status, _ in runs):
            return runs
        await asyncio.sleep(0.1)
    raise AssertionError(f"expected {count} runs, saw {await _runs(client, post_id)}")


def _first_task_due(published_at: datetime) -> datetime:
    return published_at + timedelta(hours=1) - timedelta(minutes=1)


async def test_a_restart_replaces_the_insights_started_ahead_for_the_planned_time(
    temporal_client: Client,
) -> None:
    starter = PostMetricsStarter(temporal_client, f"insights-{uuid.uuid4()}")
    post_id = _unique_post_id()
    planned = datetime.now(UTC) + timedelta(minutes=2)
    went_out = planned + timedelta(hours=3)  # an outage delayed it
    await starter.start_post_metrics(PostMetricsInput(post_id, planned))
    await starter.restart_post_metrics(PostMetricsInput(post_id, went_out))
    await starter.restart_post_metrics(PostMetricsInput(post_id, went_out))  # a retried activity
    runs = await _wait_for_runs(temporal_client, post_id, 3)
    statuses = [status for status, _ in runs]
    assert statuses == [
        WorkflowExecutionStatus.TERMINATED,
        WorkflowExecutionStatus.TERMINATED,
        WorkflowExecutionStatus.RUNNING,
    ]
    due = [when for _, when in runs]
    assert due[0] is not None and abs(due[0] - _first_task_due(planned)) < timedelta(seconds=10)
    assert due[2] is not None and abs(due[2] - _first_task_due(went_out)) < timedelta(seconds=10)
    handle = temporal_client.get_workflow_handle(post_metrics_workflow_id(post_id))
    # A start for the planned time, coming after the restart (a retry), changes nothing.
    await starter.start_post_metrics(PostMetricsInput(post_id, planned))
    assert len(await _wait_for_runs(temporal_client, post_id, 3)) == 3
    await handle.terminate("test over")


async def test_a_restart_follows_insights_that_already_ended(temporal_client: Client) -> None:
    """Started ahead for a time long past the post's real one: they woke, found nothing to read and ended."""
    starter = PostMetricsStarter(temporal_client, f"insights-{uuid.uuid4()}")
    post_id = _unique_post_id()
    planned = datetime.now(UTC) + timedelta(minutes=2)
    await starter.start_post_metrics(PostMetricsInput(post_id, planned))
    handle = temporal_client.get_workflow_handle(post_metrics_workflow_id(post_id))
    await handle.terminate("stands for a run that ended")
    went_out = planned + timedelta(hours=5)
    await starter.restart_post_metrics(PostMetricsInput(post_id, went_out))
    runs = await _wait_for_runs(temporal_client, post_id, 2)
    assert runs[-1][0] is WorkflowExecutionStatus.RUNNING
    assert runs[-1][1] is not None and abs(runs[-1][1] - _first_task_due(went_out)) < timedelta(seconds=10)
    await handle.terminate("test over")


async def _termination_reason(client: Client, post_id: int) -> str | None:
    handle = client.get_workflow_handle(post_metrics_workflow_id(post_id))
    async for event in handle.fetch_history_events():
        if event.HasField("workflow_execution_terminated_event_attributes"):
            return str(event.workflow_execution_terminated_event_attributes.reason)
    return None


async def test_a_post_that_did_not_go_out_withdraws_the_insights_started_ahead(
    temporal_client: Client,
) -> None:
    """Cancelled or failed during its hold: the run started ahead is terminated, saying why; withdrawing again (a
    retried activity), or for a post that has none, changes nothing."""
    starter = PostMetricsStarter(temporal_client, f"insights-{uuid.uuid4()}")
    post_id = _unique_post_id()
    await starter.restart_post_metrics(PostMetricsInput(post_id, datetime.now(UTC) + timedelta(minutes=2)))
    await starter.withdraw_post_metrics(PostRef(post_id))
    await starter.withdraw_post_metrics(PostRef(post_id))
    runs = await _wait_for_runs(temporal_client, post_id, 1)
    assert runs[0][0] is WorkflowExecutionStatus.TERMINATED
    assert await _termination_reason(temporal_client, post_id) == (
        f"post {post_id} ended without going out: there are no insights to read"
    )
    nothing_started = _unique_post_id()
    await starter.withdraw_post_metrics(PostRef(nothing_started))
    assert await _runs(temporal_client, nothing_started) == []


async def test_a_retried_post_starts_its_insights_for_its_new_time(temporal_client: Client) -> None:
    """A failed post's run had started them ahead for its own time; the retried post's run starts them ahead (a
    restart) for its new time, whether the failed run withdrew them or could not."""
    starter = PostMetricsStarter(temporal_client, f"insights-{uuid.uuid4()}")
    for withdrawn in (True, False):
        post_id = _unique_post_id()
        first_time = datetime.now(UTC) + timedelta(minutes=2)
        await starter.restart_post_metrics(PostMetricsInput(post_id, first_time))
        if withdrawn:
            await starter.withdraw_post_metrics(PostRef(post_id))
        new_time = first_time + timedelta(days=1)
        await starter.restart_post_metrics(PostMetricsInput(post_id, new_time))
        runs = await _wait_for_runs(temporal_client, post_id, 2)
        assert [status for status, _ in runs] == [
            WorkflowExecutionStatus.TERMINATED,
            WorkflowExecutionStatus.RUNNING,
        ], withdrawn
        due = runs[-1][1]
        assert due is not None and abs(due - _first_task_due(new_time)) < timedelta(seconds=10), withdrawn
        await temporal_client.get_workflow_handle(post_metrics_workflow_id(post_id)).terminate("test over")
