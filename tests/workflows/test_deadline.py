"""Outages delay a post until its deadline (publish_at + max lateness), never fail it before: on the time-skipping
server, hours of Graph API outage in seconds (issue 12)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import WorkflowFailureError

from chronogram.contracts import CancelRequest, ErrorType, EventKind, PublishStep
from chronogram.enums import PostStatus
from tests.support.fakes import Script, graph_error
from workflows import ScheduledPostWorkflow

# A delayed call is retried at most this far apart (workflows.scheduled_post._PATIENT_INTERVAL), plus the few
# seconds of the calls that follow recovery.
RECOVERY = timedelta(seconds=30)


def _codes(run) -> list[ErrorType | None]:
    return [event.error_code for event in run.world.events]


@pytest.mark.parametrize(
    ("outage_start", "phase"),
    [(timedelta(minutes=15), "preparation"), (timedelta(minutes=29), "publishing")],
)
async def test_a_two_hour_outage_before_publish_at_ends_in_one_publish_right_after_recovery(
    schedule, outage_start: timedelta, phase: str
) -> None:
    outage_end = outage_start + timedelta(hours=2)
    run = await schedule(timedelta(minutes=30), Script(graph_outage=(outage_start, outage_end)))
    await run.env.sleep(outage_start + timedelta(minutes=20))
    state = await run.handle.query(ScheduledPostWorkflow.state)
    assert state.status is (PostStatus.SCHEDULED if phase == "preparation" else PostStatus.PUBLISHING)
    assert state.step is PublishStep.DELAYED
    assert state.delay is not None and state.delay.describe().startswith(
        "delayed: Instagram unavailable since"
    )
    assert "GraphTransientError" in state.delay.last_error
    assert state.deadline == run.publish_at + timedelta(hours=24)
    since = state.delay.since
    assert run.world.base + outage_start <= since <= run.world.base + outage_start + timedelta(minutes=10)

    result = await run.handle.result()
    assert result.status is PostStatus.PUBLISHED
    assert run.world.published == ["c1"] and run.world.comments == ["m-c1"]
    assert run.world.failed_calls > 0
    recovered = run.world.base + outage_end
    published_at = [c.at for c in run.world.calls if c.name == "publish"][-1]
    assert recovered <= published_at <= recovered + RECOVERY
    # One delay, announced once, and its end.
    assert _codes(run).count(ErrorType.PUBLISH_DELAYED) == 1
    assert _codes(run).count(ErrorType.PUBLISH_RESUMED) == 1
    resumed = next(e for e in run.world.events if e.error_code is ErrorType.PUBLISH_RESUMED)
    assert (
        resumed.kind is EventKind.ATTEMPT and "resumed: Instagram answered again after 1 h" in resumed.message
    )
    assert run.world.final_status is PostStatus.PUBLISHED
    # The server's retries carried the outage: the history stayed small.
    history = await run.handle.fetch_history()
    assert len(history.events) < 200


async def test_an_outage_past_the_max_lateness_fails_the_post_with_the_deadline_code(schedule) -> None:
    outage = (timedelta(minutes=15), timedelta(hours=5))
    run = await schedule(timedelta(minutes=30), Script(graph_outage=outage, max_lateness_seconds=3600))
    with pytest.raises(WorkflowFailureError) as failure:
        await run.handle.result()
    assert getattr(failure.value.cause, "type", None) == ErrorType.PUBLISH_DEADLINE_PASSED
    assert run.world.published == []
    ending = run.world.finished[-1]
    assert ending.status is PostStatus.FAILED and ending.error_code is ErrorType.PUBLISH_DEADLINE_PASSED
    message = ending.error_message or ""
    assert "Instagram was unavailable from" in message and "1 h 0 min of allowed lateness" in message
    assert "Schedule it again" in message and "will be retried" not in message
    # Failed at its deadline, not before.
    failed_at = next(c.at for c in run.world.calls if c.name == "finish")
    assert run.publish_at + timedelta(hours=1) <= failed_at <= run.publish_at + timedelta(hours=1) + RECOVERY


async def test_no_lateness_means_on_time_or_not_at_all(schedule) -> None:
    outage = (timedelta(minutes=29), timedelta(minutes=45))
    run = await schedule(timedelta(minutes=30), Script(graph_outage=outage, max_lateness_seconds=0))
    with pytest.raises(WorkflowFailureError):
        await run.handle.result()
    assert run.world.published == []
    assert run.world.finished[-1].error_code is ErrorType.PUBLISH_DEADLINE_PASSED


async def test_a_cancel_while_delayed_in_preparation_cancels_at_once(schedule) -> None:
    run = await schedule(timedelta(minutes=30), Script(graph_outage=(timedelta(0), timedelta(hours=10))))
    await run.env.sleep(timedelta(minutes=40))
    assert (await run.handle.query(ScheduledPostWorkflow.state)).step is PublishStep.DELAYED
    await run.handle.signal(ScheduledPostWorkflow.cancel, CancelRequest(reason="not during an outage"))
    result = await run.handle.result()
    assert result.status is PostStatus.CANCELLED
    assert run.world.published == []


async def test_first_comment_transient_failures_are_retried_until_it_is_posted_once(schedule) -> None:
    errors = [graph_error("GraphTransientError", retryable=True) for _ in range(12)]
    run = await schedule(timedelta(minutes=30), Script(comment_errors=errors))
    result = await run.handle.result()
    assert result.status is PostStatus.PUBLISHED
    assert run.world.comments == ["m-c1"]
    assert len(run.world.called("post_first_comment")) == 13
    assert ErrorType.FIRST_COMMENT_REFUSED not in _codes(run)


async def test_a_refused_first_comment_leaves_the_post_published_and_recorded(schedule) -> None:
    run = await schedule(
        timedelta(minutes=30), Script(comment_errors=[graph_error("GraphInvalidRequestError")])
    )
    result = await run.handle.result()
    assert result.status is PostStatus.PUBLISHED
    assert run.world.comments == []
    refused = [e for e in run.world.events if e.error_code is ErrorType.FIRST_COMMENT_REFUSED]
    assert len(refused) == 1 and "refused" in refused[0].message and "live without it" in refused[0].message
