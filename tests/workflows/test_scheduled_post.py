"""ScheduledPostWorkflow on the time-skipping test server: months of waiting in seconds, every signal and every
Graph API error class, with activities replaced by a stateful in-memory world (tests/support/fakes.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from chronogram.contracts import (
    PUBLISH_AT,
    CancelRequest,
    PostSignal,
    PublishNowRequest,
    QuotaReport,
    RescheduleRequest,
    SignalOutcome,
    SignalOutcomeQuery,
    SignalRefusal,
    SignalVerdict,
)
from chronogram.enums import PostStatus, PostType
from tests.support.fakes import PublishFault, Script, graph_error
from tests.workflows.conftest import TOLERANCE
from workflows import ScheduledPostWorkflow


async def test_post_ninety_days_ahead_publishes_at_its_time(schedule) -> None:
    run = await schedule(timedelta(days=90))
    result = await run.handle.result()
    assert result.status is PostStatus.PUBLISHED
    assert result.media_id == "m-c1"
    assert result.permalink == "https://www.instagram.com/p/m-c1/"
    run.assert_published_on_time(run.publish_at)
    assert run.world.published == ["c1"]
    assert run.world.comments == ["m-c1"]
    assert run.world.final_status is PostStatus.PUBLISHED


async def test_the_permalink_read_by_the_publish_is_not_fetched_again(schedule) -> None:
    run = await schedule(timedelta(hours=1))
    result = await run.handle.result()
    assert result.permalink == "https://www.instagram.com/p/m-c1/"
    assert run.world.called("fetch_permalink") == []
    assert run.world.finished[-1].permalink == result.permalink


async def test_a_publish_that_could_not_read_the_permalink_leaves_it_to_fetch_permalink(schedule) -> None:
    run = await schedule(timedelta(hours=1), Script(permalink_with_publish=False))
    result = await run.handle.result()
    assert result.permalink == "https://www.instagram.com/p/m-c1/"
    assert [call.arg.media_id for call in run.world.called("fetch_permalink")] == ["m-c1"]
    assert run.world.finished[-1].permalink == result.permalink


async def test_carousel_creates_children_then_parent(schedule) -> None:
    run = await schedule(timedelta(hours=1), Script(post_type=PostType.CAROUSEL, media_count=3))
    result = await run.handle.result()
    assert result.status is PostStatus.PUBLISHED
    creates = [call.arg for call in run.world.called("create_container")]
    assert sorted(c.position for c in creates[:3]) == [0, 1, 2]
    assert creates[3].position is None and sorted(creates[3].children) == ["c1", "c2", "c3"]
    assert run.world.published == ["c4"]


@pytest.mark.parametrize(
    ("due_before", "spacing_ms", "lead_max_s"),
    [(0, None, None), (400, None, None), (5000, None, None), (400, 60, 75), (1100, 60, 75), (3, 1000, 12)],
)
async def test_a_burst_wakes_its_posts_one_after_the_other(
    schedule, due_before: int, spacing_ms: int | None, lead_max_s: int | None
) -> None:
    """A post begins publishing ahead of its time by a lead that grows with the posts due in the same second
    created before it (the plan's pace each, from 10 s, at most the plan's longest lead): the burst's workflow
    tasks come at a steady pace. Plans read before the pace was a setting: 25 ms each, at most 60 s."""
    script = Script(due_before=due_before, wake_spacing_ms=spacing_ms, wake_lead_max_seconds=lead_max_s)
    run = await schedule(timedelta(hours=2), script)
    assert (await run.handle.result()).status is PostStatus.PUBLISHED
    lead = min(
        timedelta(seconds=10) + due_before * timedelta(milliseconds=spacing_ms or 25),
        timedelta(seconds=lead_max_s or 60),
    )
    assert run.publish_at - lead <= run.begin_time() < run.publish_at - lead + timedelta(seconds=1)
    assert run.world.called("publish")[0].arg.not_before == run.publish_at


@pytest.mark.parametrize("new_delay", [timedelta(days=10), timedelta(days=40)], ids=["earlier", "later"])
async def test_reschedule_during_the_sleep_moves_the_publish(schedule, new_delay: timedelta) -> None:
    run = await schedule(timedelta(days=30))
    await run.env.sleep(timedelta(days=5))
    new_time = run.publish_at - timedelta(days=30) + new_delay
    await run.handle.signal(ScheduledPostWorkflow.reschedule, RescheduleRequest(publish_at=new_time))
    result = await run.handle.result()
    assert result.status is PostStatus.PUBLISHED
    run.assert_published_on_time(new_time)
    assert [e.publish_at for e in run.world.events if e.publish_at] == [new_time]


async def test_several_reschedules_the_last_one_wins(schedule) -> None:
    run = await schedule(timedelta(days=30))
    base = run.publish_at - timedelta(days=30)
    for days in (60, 3, 20):
        await run.env.sleep(timedelta(hours=1))
        await run.handle.signal(
            ScheduledPostWorkflow.reschedule, RescheduleRequest(publish_at=base + timedelta(days=days))
        )
    state = await run.handle.query(ScheduledPostWorkflow.state)
    assert state.publish_at == base + timedelta(days=20)
    await run.handle.result()
    run.assert_published_on_time(base + timedelta(days=20))
    assert len(run.world.published) == 1


async def test_publish_now_during_the_sleep(schedule) -> None:
    run = await schedule(timedelta(days=30))
    await run.env.sleep(timedelta(days=2))
    signalled_at = await run.env.get_current_time()
    await run.handle.signal(ScheduledPostWorkflow.publish_now, PublishNowRequest())
    result = await run.handle.result()
    assert result.status is PostStatus.PUBLISHED
    assert run.begin_time() < run.publish_at - timedelta(days=27)
    assert run.begin_time() - signalled_at < timedelta(minutes=1)
    assert run.world.called("publish")[0].arg.not_before is None  # now means now: nothing to hold for


async def test_cancel_during_the_sleep(schedule) -> None:
    run = await schedule(timedelta(days=30))
    await run.env.sleep(timedelta(days=1))
    await run.handle.signal(ScheduledPostWorkflow.cancel, CancelRequest(reason="changed my mind"))
    result = await run.handle.result()
    assert result.status is PostStatus.CANCELLED
    assert run.world.called("begin_publishing") == []
    assert run.world.published == []
    assert run.world.finished[-1].status is PostStatus.CANCELLED
    assert run.world.finished[-1].error_message == "changed my mind"


async def test_signals_after_a_cancel_are_refused(schedule) -> None:
    run = await schedule(timedelta(days=30))
    await run.handle.signal(ScheduledPostWorkflow.cancel, CancelRequest())
    await run.handle.signal(ScheduledPostWorkflow.publish_now, PublishNowRequest())
    result = await run.handle.result()
    assert result.status is PostStatus.CANCELLED
    assert run.world.published == []
    assert [e.message for e in run.world.events] == ["publish_now refused: the post is being cancelled"]


async def test_signals_once_publishing_began_are_refused_and_recorded(schedule) -> None:
    gate = asyncio.Event()
    run = await schedule(timedelta(minutes=5), Script(publish_gate=gate))
    # Time only skips while a test waits on a result, so the activity stays blocked on the gate meanwhile.
    await run.env.sleep(timedelta(minutes=5))
    while not run.world.called("begin_publishing"):
        await asyncio.sleep(0.05)
    await run.handle.signal(ScheduledPostWorkflow.cancel, CancelRequest())
    await run.handle.signal(
        ScheduledPostWorkflow.reschedule, RescheduleRequest(publish_at=run.publish_at + timedelta(days=1))
    )
    state = await run.handle.query(ScheduledPostWorkflow.state)
    while len(state.refused_signals) < 2:
        await asyncio.sleep(0.05)
        state = await run.handle.query(ScheduledPostWorkflow.state)
    gate.set()
    result = await run.handle.result()
    assert result.status is PostStatus.PUBLISHED
    assert [r.signal for r in state.refused_signals] == ["cancel", "reschedule"]
    assert all(r.status is PostStatus.PUBLISHING for r in state.refused_signals)
    # In the order the workflow numbered them (both signals may be handled in one workflow task, their records
    # then written concurrently).
    events = sorted(run.world.events, key=lambda event: event.sequence or 0)
    refusals = [e.message for e in events if "refused" in e.message]
    assert refusals == [
        "cancel refused: the post is already publishing",
        "reschedule refused: the post is already publishing",
    ]


# --- Graph API error classes -------------------------------------------------------------------------------------


async def test_transient_and_throttled_errors_are_retried_then_published(schedule) -> None:
    script = Script(
        create_errors=[
            graph_error("GraphTransientError", retryable=True),
            graph_error("GraphThrottledError", retryable=True, next_retry_delay=timedelta(minutes=10)),
        ]
    )
    run = await schedule(timedelta(hours=1), script)
    result = await run.handle.result()
    assert result.status is PostStatus.PUBLISHED
    attempts = run.world.called("create_container")
    # Retried on the same activity, not failed. (The Java test server ignores next_retry_delay, so the wait a
    # throttle asks for is checked where it is set: tests/activities, and on the real dev server.)
    assert len(attempts) == 3
    assert run.world.published == ["c1"]


async def test_not_ready_containers_are_polled_until_finished(schedule) -> None:
    run = await schedule(timedelta(hours=1), Script(polls_until_finished=4))
    assert (await run.handle.result()).status is PostStatus.PUBLISHED
    assert len(run.world.called("check_container_ready")) == 5
    assert run.world.published == ["c1"]


async def test_quota_used_up_waits_for_the_rolling_window(schedule) -> None:
    script = Script(
        quota_reads=[
            QuotaReport(usage=100, total=100),
            QuotaReport(usage=100, total=100),
            QuotaReport(usage=99, total=100),
        ]
    )
    run = await schedule(timedelta(hours=1), script)
    result = await run.handle.result()
    assert result.status is PostStatus.PUBLISHED
    publish_call = run.world.called("publish")[0]
    assert publish_call.at - run.begin_time() >= timedelta(minutes=30)  # two 15-minute durable waits
    assert run.world.published == ["c1"]


@pytest.mark.parametrize(
    ("kind", "where"),
    [
        ("GraphInvalidRequestError", "create"),
        ("InvalidMediaError", "create"),
        ("MediaRejected", "prepare"),
    ],
)
async def test_non_retryable_errors_fail_the_post_with_a_reason(schedule, kind: str, where: str) -> None:
    error = graph_error(kind)
    script = Script(create_errors=[error]) if where == "create" else Script(prepare_error=error)
    run = await schedule(timedelta(hours=1), script)
    with pytest.raises(WorkflowFailureError) as failure:
        await run.handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == kind
    assert run.world.final_status is PostStatus.FAILED
    assert run.world.finished[-1].error_code == kind
    assert f"simulated {kind}" in (run.world.finished[-1].error_message or "")
    assert run.world.published == []
    state = await run.handle.query(ScheduledPostWorkflow.state)
    assert state.status is PostStatus.FAILED and state.last_error and kind in state.last_error
    # Media and containers are prepared ahead of time: the user hears of the problem before the publish time.
    assert run.world.called("finish")[0].at <= run.publish_at - timedelta(minutes=9)


async def test_a_refused_token_waits_for_a_reconnect_until_the_deadline(schedule) -> None:
    # The account is never reconnected (published_after_reconnect, a recorded scenario, is the other side).
    script = Script(create_errors=[graph_error("GraphAuthError")], max_lateness_seconds=3600)
    run = await schedule(timedelta(hours=1), script)
    with pytest.raises(WorkflowFailureError) as failure:
        await run.handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "GraphAuthError"
    assert "was not reconnected before this post's deadline" in str(cause)
    ended = run.world.called("finish")[0].at
    assert run.publish_at + timedelta(minutes=59) <= ended <= run.publish_at + timedelta(minutes=62)
    assert run.world.published == []
    messages = [call.arg.message for call in run.world.called("record_event")]
    assert any(message.startswith("waiting for the account to be reconnected") for message in messages)


async def test_prepared_ahead_then_published_on_time(schedule) -> None:
    run = await schedule(timedelta(days=2))
    await run.handle.result()
    prepared = run.world.called("check_container_ready")[-1].at
    assert run.publish_at - timedelta(minutes=11) <= prepared <= run.publish_at - timedelta(minutes=9)
    run.assert_published_on_time(run.publish_at)


async def test_cancel_after_preparation_leaves_the_container_unpublished(schedule) -> None:
    run = await schedule(timedelta(days=2))
    await run.env.sleep(timedelta(days=2) - timedelta(minutes=5))
    assert run.world.containers == {"c1": "FINISHED"}
    await run.handle.signal(ScheduledPostWorkflow.cancel, CancelRequest())
    result = await run.handle.result()
    assert result.status is PostStatus.CANCELLED
    assert run.world.published == [] and run.world.called("begin_publishing") == []


async def test_container_error_gets_a_new_container(schedule) -> None:
    run = await schedule(timedelta(hours=1), Script(container_ends_as=["ERROR"]))
    with pytest.raises(WorkflowFailureError):
        await run.handle.result()
    # An ERROR container while waiting is Meta refusing the media: no blind retry, a reason for the user.
    assert run.world.final_status is PostStatus.FAILED
    assert run.world.finished[-1].error_code == "ContainerUnusableError"
    assert run.world.published == []


@pytest.mark.parametrize(
    "error",
    [
        graph_error("OutcomeUnknownError"),  # timeout or connection drop after the request was sent
        graph_error("GraphThrottledError", retryable=True),  # 4/2207051: may have gone live
        graph_error("GraphTransientError", retryable=True),  # HTML 502
    ],
    ids=["outcome-unknown", "error-but-published", "502-but-published"],
)
async def test_publish_that_went_live_despite_an_error_is_not_published_again(
    schedule, error: ApplicationError
) -> None:
    run = await schedule(timedelta(hours=1), Script(publish_faults=[PublishFault(error, committed=True)]))
    result = await run.handle.result()
    assert result.status is PostStatus.PUBLISHED
    assert result.media_id == "m-c1"
    assert run.world.published == ["c1"]
    # An unclear answer is settled by reading the container; a throttle or transient failure is retried by an
    # attempt that reads the container first, finds it PUBLISHED and sends nothing.
    assert len(run.world.called("publish")) == (1 if error.type == "OutcomeUnknownError" else 2)
    assert run.world.comments == ["m-c1"]


async def test_publish_that_did_not_go_live_is_retried_on_the_same_container(schedule) -> None:
    run = await schedule(
        timedelta(hours=1), Script(publish_faults=[PublishFault(graph_error("OutcomeUnknownError"))])
    )
    result = await run.handle.result()
    assert result.status is PostStatus.PUBLISHED
    assert run.world.published == ["c1"]
    assert [c.arg.container_id for c in run.world.called("publish")] == ["c1", "c1"]
    # The container was re-read at once, then after 2, 4, 8 and 16 s, before the second call: a publish may still
    # be committing within Meta's commit window (30 s). Earlier code re-read it four times 30 s apart.
    reconciles = run.world.called("reconcile_publish")
    assert [(call.at - reconciles[0].at).total_seconds() for call in reconciles] == pytest.approx(
        [0, 2, 6, 14, 30], abs=1
    )


async def test_expired_container_after_a_failed_publish_gets_a_new_one(schedule) -> None:
    script = Script(
        publish_faults=[PublishFault(graph_error("OutcomeUnknownError"))], expire_after_failed_publish=True
    )
    run = await schedule(timedelta(hours=1), script)
    result = await run.handle.result()
    assert result.status is PostStatus.PUBLISHED
    assert run.world.containers == {"c1": "EXPIRED", "c2": "PUBLISHED"}
    assert run.world.published == ["c2"]


@pytest.mark.parametrize("kind", ["GraphTransientError", "OutcomeUnknownError"])
async def test_publish_attempts_are_bounded_by_the_deadline_not_a_count(schedule, kind: str) -> None:
    """Three failed publishes used to fail the post (PublishOutcomeUnknown); a fourth attempt now publishes it."""
    faults = [PublishFault(graph_error(kind, retryable=kind == "GraphTransientError")) for _ in range(3)]
    run = await schedule(timedelta(hours=1), Script(publish_faults=faults))
    result = await run.handle.result()
    assert result.status is PostStatus.PUBLISHED
    assert run.world.published == ["c1"]
    assert len(run.world.called("publish")) == 4
    # Only a call that went out unanswered is settled by reading the container.
    assert len(run.world.called("reconcile_publish")) == (0 if kind == "GraphTransientError" else 3 * 5)


# --- signals typed by hand, and each request's outcome -------------------------------------------------------------


async def test_signals_without_or_with_malformed_input_are_refused_and_recorded(schedule) -> None:
    """What an operator sends with `temporal workflow signal --name cancel` and no -i, or a wrong -i: refused and
    recorded, never a failing workflow task (which would retry forever, and the post would never publish)."""
    run = await schedule(timedelta(hours=2))
    await run.handle.signal("cancel")
    await run.handle.signal("reschedule", {"publish_at": "tomorrow"})
    await run.handle.signal("publish_now", "now please")
    await run.handle.signal("cancel", args=[CancelRequest(), CancelRequest()])
    state = await run.handle.query(ScheduledPostWorkflow.state)
    assert [(r.signal, r.reason) for r in state.refused_signals] == [
        (PostSignal.CANCEL, SignalRefusal.MALFORMED_INPUT),
        (PostSignal.RESCHEDULE, SignalRefusal.MALFORMED_INPUT),
        (PostSignal.PUBLISH_NOW, SignalRefusal.MALFORMED_INPUT),
        (PostSignal.CANCEL, SignalRefusal.MALFORMED_INPUT),
    ]
    result = await run.handle.result()
    assert result.status is PostStatus.PUBLISHED
    run.assert_published_on_time(run.publish_at)
    # Each handler records its refusal with an activity of its own: they may land in any order.
    assert sorted(e.message for e in run.world.events if "refused" in e.message) == [
        "cancel refused: its input is not a CancelRequest",
        "cancel refused: its input is not a CancelRequest",
        "publish_now refused: its input is not a PublishNowRequest",
        "reschedule refused: its input is not a RescheduleRequest",
    ]


async def test_an_empty_object_is_a_valid_cancel(schedule) -> None:
    run = await schedule(timedelta(hours=2))
    await run.handle.signal("cancel", {})
    assert (await run.handle.result()).status is PostStatus.CANCELLED


async def test_each_signal_request_has_an_outcome_read_back_by_id(schedule) -> None:
    gate = asyncio.Event()
    run = await schedule(timedelta(minutes=5), Script(publish_gate=gate))

    async def outcome(request_id: str) -> SignalOutcome:
        answer: SignalOutcome = await run.handle.query(
            ScheduledPostWorkflow.signal_outcome, SignalOutcomeQuery(request_id)
        )
        return answer

    new_time = run.publish_at + timedelta(minutes=1)
    await run.handle.signal(
        ScheduledPostWorkflow.reschedule, RescheduleRequest(publish_at=new_time, request_id="r-1")
    )
    accepted = await outcome("r-1")
    assert (accepted.verdict, accepted.status, accepted.refusal) == (
        SignalVerdict.ACCEPTED,
        PostStatus.SCHEDULED,
        None,
    )
    unknown = await outcome("never-sent")
    assert (unknown.verdict, unknown.status) == (SignalVerdict.UNKNOWN, PostStatus.SCHEDULED)

    await run.env.sleep(timedelta(minutes=6))
    while not run.world.called("begin_publishing"):
        await asyncio.sleep(0.05)
    await run.handle.signal(ScheduledPostWorkflow.cancel, CancelRequest(request_id="c-1"))
    refused = await outcome("c-1")
    assert (refused.verdict, refused.status, refused.refusal) == (
        SignalVerdict.REFUSED,
        PostStatus.PUBLISHING,
        SignalRefusal.NOT_SCHEDULED,
    )
    gate.set()
    assert (await run.handle.result()).status is PostStatus.PUBLISHED


async def test_a_signal_after_an_accepted_cancel_is_refused_as_being_cancelled(schedule) -> None:
    run = await schedule(timedelta(days=3))
    await run.handle.signal(ScheduledPostWorkflow.cancel, CancelRequest(request_id="c-1"))
    await run.handle.signal(ScheduledPostWorkflow.publish_now, PublishNowRequest(request_id="p-1"))
    outcome = await run.handle.query(ScheduledPostWorkflow.signal_outcome, SignalOutcomeQuery("p-1"))
    assert (outcome.verdict, outcome.refusal) == (SignalVerdict.REFUSED, SignalRefusal.BEING_CANCELLED)
    assert (await run.handle.result()).status is PostStatus.CANCELLED


async def test_a_container_still_processing_after_a_round_is_waited_for_in_further_rounds(schedule) -> None:
    """Instagram still processing after the first 10-minute round is not a failure: the container lives 24 h.
    Each round is one activity whose schedule-to-close timeout ends it; the workflow pauses, then polls again."""
    run = await schedule(timedelta(hours=1), Script(polls_until_finished=40))
    result = await run.handle.result()
    assert result.status is PostStatus.PUBLISHED
    polls = run.world.called("check_container_ready")
    assert len(polls) == 41
    # More than one round: the polls span more than one round's 10-minute budget.
    assert polls[-1].at - polls[0].at > timedelta(minutes=10)
    assert run.world.published == ["c1"]


async def test_a_container_stuck_for_every_round_fails_the_post_with_a_message_to_act_on(schedule) -> None:
    run = await schedule(timedelta(hours=2), Script(polls_until_finished=10_000))
    with pytest.raises(WorkflowFailureError) as failed:
        await run.handle.result()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "ContainerNotReadyError"
    assert "still processing" in cause.message and "after 3 rounds of 10 minutes" in cause.message
    assert (
        len(run.world.called("begin_publishing")) == 1
    )  # scheduled -> publishing -> failed, as every failure
    assert run.world.published == []
    assert run.world.finished[-1].status is PostStatus.FAILED


async def test_publish_now_moves_the_posts_time_to_when_it_went_out(schedule) -> None:
    run = await schedule(timedelta(days=30))
    await run.env.sleep(timedelta(days=2))
    await run.handle.signal(ScheduledPostWorkflow.publish_now, PublishNowRequest())
    assert (await run.handle.result()).status is PostStatus.PUBLISHED
    [began] = run.world.called("begin_publishing")
    assert began.arg.publish_at is not None
    assert abs(began.arg.publish_at - began.at) < TOLERANCE
    state = await run.handle.query(ScheduledPostWorkflow.state)
    assert state.publish_at == began.arg.publish_at
    description = await run.handle.describe()
    assert description.typed_search_attributes.get(PUBLISH_AT) == began.arg.publish_at


async def test_a_post_published_at_its_time_keeps_its_time(schedule) -> None:
    run = await schedule(timedelta(hours=1))
    await run.handle.result()
    [began] = run.world.called("begin_publishing")
    assert began.arg.publish_at is None
