"""PostMetricsWorkflow: one per published post (id ``post-metrics-{post_id}``), reading its insights at +1 h,
+24 h and +7 d after it was published.

Started by an activity of the post's ScheduledPostWorkflow (on the insights task queue), so the post's own workflow
ends at publish and this one lives on alone: as the post begins publishing, for its publish time (a held publish,
again for the true time if the post went out more than a minute from it), or once it is published; its first task
is delayed until a minute before the first reading (activities/metrics.py). A post that ends without going out
withdraws it (terminated with the reason); if that could not be done, the first reading finds nothing to read, and
the workflow ends. Each reading waits on one durable
timer (counted from ``published_at``, so a late start never shifts them), then runs one activity whose retries are
bounded: a reading that keeps failing is stored with its error and the next one is still taken. Nothing here can change the post's
status. Its input and history hold the post id and times only: the activity reads the token itself.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from chronogram.contracts import (
        POST_METRICS_WORKFLOW,
        CaptureMetricsInput,
        CaptureOutcome,
        MetricsCheckpoint,
        PostMetricsInput,
        PostMetricsInterface,
        PostMetricsResult,
    )

# Bounded: about 15 minutes of attempts per reading, then it is stored as failed (the activity does so on its
# last attempt). A throttle's announced wait replaces the backoff.
_ATTEMPTS = 6
_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=30),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=_ATTEMPTS,
)
_READ_TIMEOUT = timedelta(minutes=1)


@workflow.defn(name=POST_METRICS_WORKFLOW)
class PostMetricsWorkflow:
    @workflow.run
    async def run(self, request: PostMetricsInput) -> PostMetricsResult:
        captured: list[MetricsCheckpoint] = []
        missed: list[MetricsCheckpoint] = []
        for checkpoint in MetricsCheckpoint:
            due = request.published_at + timedelta(seconds=checkpoint.seconds)
            wait = due - workflow.now()
            if wait > timedelta(0):
                await workflow.sleep(wait, summary=f"until +{checkpoint.value}")
            try:
                result = await workflow.execute_activity_method(
                    PostMetricsInterface.capture_metrics,
                    CaptureMetricsInput(request.post_id, checkpoint, final_attempt=_ATTEMPTS),
                    start_to_close_timeout=_READ_TIMEOUT,
                    retry_policy=_RETRY,
                    summary=f"insights at +{checkpoint.value}",
                )
            except ActivityError:
                # Timeouts on every attempt (the activity stores the other failures itself): this reading is lost.
                missed.append(checkpoint)
                continue
            if result.outcome is CaptureOutcome.GONE:
                break
            (captured if result.outcome is CaptureOutcome.CAPTURED else missed).append(checkpoint)
        return PostMetricsResult(request.post_id, captured, missed)
