"""Scenarios whose histories are recorded for replay tests: every path through ScheduledPostWorkflow.

Each runs the real workflow against the in-memory world of tests/support/fakes.py. Scenarios that finish in
seconds run on the real dev server; the few with long durable waits inside (quota window, reconcile re-reads)
run on the time-skipping server, which writes the same history format.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from temporalio.client import WorkflowHandle

from chronogram.contracts import (
    AccountReconnected,
    AccountSignal,
    CancelRequest,
    PublishNowRequest,
    PublishStep,
    QuotaReport,
    RescheduleRequest,
    ScheduledPostResult,
)
from chronogram.enums import PostType
from tests.support.fakes import PublishFault, Script, graph_error
from workflows import ScheduledPostWorkflow

Handle = WorkflowHandle[ScheduledPostWorkflow, ScheduledPostResult]


@dataclass
class Scenario:
    name: str
    script: Callable[[], Script] = Script
    delay: timedelta = timedelta(seconds=2)
    # Runs while the post sleeps; gets the handle.
    during_sleep: Callable[[Handle], Awaitable[None]] | None = None
    needs_time_skipping: bool = False
    expect_failure: bool = False
    tags: list[str] = field(default_factory=list)


async def _reschedule_later_then_earlier(handle: Handle) -> None:
    state = await handle.query(ScheduledPostWorkflow.state)
    await handle.signal(
        ScheduledPostWorkflow.reschedule,
        RescheduleRequest(publish_at=state.publish_at + timedelta(seconds=30)),
    )
    await handle.signal(
        ScheduledPostWorkflow.reschedule,
        RescheduleRequest(publish_at=state.publish_at + timedelta(seconds=1)),
    )


async def _publish_now(handle: Handle) -> None:
    await handle.signal(ScheduledPostWorkflow.publish_now, PublishNowRequest(reason="demo"))


async def _cancel(handle: Handle) -> None:
    await handle.signal(ScheduledPostWorkflow.cancel, CancelRequest(reason="no longer needed"))


async def _cancel_when_prepared(handle: Handle) -> None:
    while (await handle.query(ScheduledPostWorkflow.state)).step.value != "ready; waiting for publish time":
        await asyncio.sleep(0.1)
    await handle.signal(ScheduledPostWorkflow.cancel, CancelRequest(reason="prepared, then cancelled"))


async def _cancel_in_temporal(handle: Handle) -> None:
    await handle.cancel()


async def _reconnect_when_waiting(handle: Handle) -> None:
    while (await handle.query(ScheduledPostWorkflow.state)).step is not PublishStep.WAITING_FOR_RECONNECT:
        await asyncio.sleep(0.1)
    await handle.signal(
        AccountSignal.ACCOUNT_RECONNECTED, AccountReconnected(account_id=1, reconnected_at=datetime.now(UTC))
    )


def _gated() -> Script:
    gate = asyncio.Event()
    asyncio.get_running_loop().call_later(3.0, gate.set)
    return Script(publish_gate=gate)


async def _cancel_and_reschedule_while_publishing(handle: Handle) -> None:
    while (await handle.query(ScheduledPostWorkflow.state)).status.value == "scheduled":
        await asyncio.sleep(0.1)
    await handle.signal(ScheduledPostWorkflow.cancel, CancelRequest())
    state = await handle.query(ScheduledPostWorkflow.state)
    await handle.signal(
        ScheduledPostWorkflow.reschedule, RescheduleRequest(publish_at=state.publish_at + timedelta(days=1))
    )


async def _until_held(handle: Handle) -> datetime:
    while (state := await handle.query(ScheduledPostWorkflow.state)).step is not PublishStep.HOLDING:
        await asyncio.sleep(0.1)
    return state.publish_at


async def _cancel_during_hold(handle: Handle) -> None:
    await _until_held(handle)
    await handle.signal(
        ScheduledPostWorkflow.cancel, CancelRequest(reason="cancelled while its call was held")
    )


async def _reschedule_during_hold(handle: Handle) -> None:
    publish_at = await _until_held(handle)
    await handle.signal(
        ScheduledPostWorkflow.reschedule, RescheduleRequest(publish_at=publish_at + timedelta(seconds=2))
    )


async def _signals_typed_by_hand(handle: Handle) -> None:
    """An operator's signals without input, or with input of the wrong shape, then one with a request id."""
    await handle.signal("cancel")
    await handle.signal("reschedule", {"publish_at": "tomorrow"})
    state = await handle.query(ScheduledPostWorkflow.state)
    await handle.signal(
        ScheduledPostWorkflow.reschedule,
        RescheduleRequest(publish_at=state.publish_at + timedelta(seconds=1), request_id="request-1"),
    )


SCENARIOS = [
    Scenario("published_image"),
    Scenario("published_carousel", lambda: Script(post_type=PostType.CAROUSEL, media_count=3)),
    Scenario("published_without_first_comment", lambda: Script(first_comment=False)),
    Scenario("rescheduled_twice", delay=timedelta(seconds=20), during_sleep=_reschedule_later_then_earlier),
    Scenario("publish_now", delay=timedelta(days=30), during_sleep=_publish_now),
    Scenario("cancelled", delay=timedelta(days=30), during_sleep=_cancel),
    Scenario("cancelled_after_preparation", delay=timedelta(minutes=3), during_sleep=_cancel_when_prepared),
    Scenario(
        "signals_refused_while_publishing", _gated, during_sleep=_cancel_and_reschedule_while_publishing
    ),
    Scenario(
        "cancelled_during_hold",
        lambda: Script(holds_publish=True),
        delay=timedelta(seconds=6),
        during_sleep=_cancel_during_hold,
    ),
    Scenario(
        "rescheduled_during_hold",
        lambda: Script(holds_publish=True),
        delay=timedelta(seconds=6),
        during_sleep=_reschedule_during_hold,
    ),
    Scenario("malformed_signals_refused", delay=timedelta(seconds=5), during_sleep=_signals_typed_by_hand),
    Scenario(
        "transient_errors_retried",
        lambda: Script(create_errors=[graph_error("GraphTransientError", retryable=True)]),
    ),
    Scenario("container_polled_until_finished", lambda: Script(polls_until_finished=2)),
    Scenario(
        "container_waited_for_further_rounds",
        lambda: Script(polls_until_finished=40),
        delay=timedelta(hours=1),
        needs_time_skipping=True,
    ),
    # The account is never reconnected: the post waits for it until its deadline (no lateness: one minute).
    Scenario(
        "failed_auth",
        lambda: Script(create_errors=[graph_error("GraphAuthError")], max_lateness_seconds=0),
        needs_time_skipping=True,
        expect_failure=True,
    ),
    Scenario("cancelled_in_temporal", delay=timedelta(days=30), during_sleep=_cancel_in_temporal),
    Scenario(
        "published_after_reconnect",
        lambda: Script(create_errors=[graph_error("GraphAuthError")]),
        during_sleep=_reconnect_when_waiting,
    ),
    Scenario(
        "failed_media_rejected",
        lambda: Script(prepare_error=graph_error("MediaRejected")),
        expect_failure=True,
    ),
    Scenario("failed_container_error", lambda: Script(container_ends_as=["ERROR"]), expect_failure=True),
    # Instagram refuses the held call for good: the post fails after it began publishing, and withdraws the
    # insights it started ahead.
    Scenario(
        "failed_during_hold",
        lambda: Script(publish_faults=[PublishFault(graph_error("GraphInvalidRequestError"))]),
        expect_failure=True,
    ),
    Scenario(
        "published_despite_publish_error",
        lambda: Script(
            publish_faults=[PublishFault(graph_error("GraphThrottledError", retryable=True), committed=True)]
        ),
    ),
    Scenario(
        "published_but_response_lost",
        lambda: Script(publish_faults=[PublishFault(graph_error("OutcomeUnknownError"), committed=True)]),
    ),
    Scenario(
        "quota_wait",
        lambda: Script(quota_reads=[QuotaReport(usage=100, total=100), QuotaReport(usage=3, total=100)]),
        needs_time_skipping=True,
    ),
    Scenario(
        "republished_same_container_after_unknown_outcome",
        lambda: Script(publish_faults=[PublishFault(graph_error("OutcomeUnknownError"))]),
        needs_time_skipping=True,
    ),
    Scenario(
        "new_container_after_expiry",
        lambda: Script(
            publish_faults=[PublishFault(graph_error("OutcomeUnknownError"))],
            expire_after_failed_publish=True,
        ),
        needs_time_skipping=True,
    ),
    # Failed after three before the publish deadline (before-publish-deadline/failed_after_unconfirmed_publishes).
    Scenario(
        "published_after_failed_publishes",
        lambda: Script(
            publish_faults=[
                PublishFault(graph_error("GraphTransientError", retryable=True)) for _ in range(3)
            ]
        ),
        needs_time_skipping=True,
    ),
    Scenario(
        "delayed_then_published",
        lambda: Script(graph_outage=(timedelta(minutes=15), timedelta(hours=2))),
        delay=timedelta(minutes=30),
        needs_time_skipping=True,
    ),
    Scenario(
        "delayed_while_publishing_then_published",
        lambda: Script(graph_outage=(timedelta(minutes=29), timedelta(hours=1))),
        delay=timedelta(minutes=30),
        needs_time_skipping=True,
    ),
    Scenario(
        "failed_deadline_passed",
        lambda: Script(graph_outage=(timedelta(minutes=15), timedelta(hours=5)), max_lateness_seconds=3600),
        delay=timedelta(minutes=30),
        needs_time_skipping=True,
        expect_failure=True,
    ),
    Scenario(
        "first_comment_retried",
        lambda: Script(
            comment_errors=[graph_error("GraphTransientError", retryable=True) for _ in range(12)]
        ),
        delay=timedelta(minutes=30),
        needs_time_skipping=True,
    ),
]
