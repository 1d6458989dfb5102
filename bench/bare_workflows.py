"""The bare workflows and their no-op activity (see bench.baseline).

Workflow code: kept in a module of its own with nothing but temporalio and the standard library imported,
because the workflow sandbox re-imports the module that defines a workflow for every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy


@workflow.defn(name="BenchTrivialWorkflow")
class TrivialWorkflow:
    """Completes in its first workflow task: what remains of a start is the start itself."""

    @workflow.run
    async def run(self) -> None:
        return None


@dataclass(frozen=True)
class BareBurstInput:
    # An epoch timestamp rather than a datetime: the plain JSON converter round-trips floats exactly.
    publish_at: float
    activities_before: int
    activities_after: int
    # Run as local activities after the publish time (the post's ending; issue 18).
    local_activities_after: int = 0
    # With a container: the first activity after the publish time makes a post's Graph calls of that time instead
    # of nothing (publish it, read its permalink, post a first comment), through bench.baseline's GraphCalls.
    ig_user_id: str = ""
    container_id: str = ""


@dataclass(frozen=True)
class GraphCallsInput:
    ig_user_id: str
    container_id: str
    step: int


GRAPH_CALLS = "bench_graph_calls"


@activity.defn(name="bench_noop")
async def noop(step: int) -> int:
    return step


@workflow.defn(name="BenchBareBurstWorkflow")
class BareBurstWorkflow:
    """A post's workflow with the work taken out: the same activity count before the publish time (preparing),
    one durable timer until it, and the same activity counts after it (publishing and finishing), local ones
    included. Given a container, it puts one piece of the work back: the post's Graph calls after the instant."""

    @workflow.run
    async def run(self, request: BareBurstInput) -> float:
        """Returns the seconds that were left before the instant when the "preparation" was done."""
        steps = 0
        for _ in range(request.activities_before):
            steps = await self._noop(steps)
        remaining = request.publish_at - workflow.now().timestamp()
        if remaining > 0:
            await workflow.sleep(timedelta(seconds=remaining))
        for index in range(request.activities_after):
            if index == 0 and request.container_id:
                steps = await workflow.execute_activity(
                    GRAPH_CALLS,
                    GraphCallsInput(request.ig_user_id, request.container_id, steps + 1),
                    result_type=int,
                    start_to_close_timeout=timedelta(seconds=60),
                    # A publish is not retried blindly; a failed call is counted on the sandbox's ground truth.
                    retry_policy=RetryPolicy(maximum_attempts=1),
                )
            else:
                steps = await self._noop(steps)
        for _ in range(request.local_activities_after):
            steps = await workflow.execute_local_activity(
                noop, steps + 1, start_to_close_timeout=timedelta(seconds=30)
            )
        return remaining

    async def _noop(self, step: int) -> int:
        return await workflow.execute_activity(noop, step + 1, start_to_close_timeout=timedelta(seconds=30))
