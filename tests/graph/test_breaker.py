"""The circuit breaker's state machine on a manual clock: when it opens, how it probes, when it closes, what it
counts as a failure, and what it shows (snapshot, logs)."""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx
import pytest

from activities.instagram import as_application_error
from chronogram.contracts import ErrorType
from chronogram.instagram import (
    BreakerConfig,
    BreakerRegistry,
    BreakerState,
    GraphCircuitOpenError,
    GraphTransientError,
    Operation,
    OutcomeUnknownError,
    classify,
)
from chronogram.instagram.breaker import HostBreaker, Permit, is_host_failure, is_host_unreachable
from chronogram.settings import Settings
from tests.graph.helpers import ManualClock

HOST = "graph.facebook.com"
CONFIG = BreakerConfig(failure_threshold=3, open_seconds=10, max_open_seconds=35, half_open_probes=2)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def registry(clock: ManualClock) -> BreakerRegistry:
    return BreakerRegistry(CONFIG, clock=clock)


@pytest.fixture
def breaker(registry: BreakerRegistry) -> HostBreaker:
    return registry.for_host(HOST)


def fail(breaker: HostBreaker, times: int = 1) -> None:
    for _ in range(times):
        breaker.admit(Operation.GET_MEDIA).failed("HTTP 500 (#2)")


def refused(breaker: HostBreaker, operation: Operation = Operation.GET_MEDIA) -> GraphCircuitOpenError:
    with pytest.raises(GraphCircuitOpenError) as caught:
        breaker.admit(operation)
    return caught.value


def answer(status: int, error: dict[str, object] | None = None, operation: Operation = Operation.GET_MEDIA):
    request = httpx.Request("GET", f"https://{HOST}/v25.0/1")
    response = httpx.Response(status, json={"error": error} if error else {}, request=request)
    return classify(response, operation=operation)


def test_opens_after_the_threshold_of_consecutive_failures_and_refuses_without_sending(
    breaker: HostBreaker,
) -> None:
    fail(breaker, 2)
    assert breaker.snapshot().state is BreakerState.CLOSED
    fail(breaker)
    assert breaker.snapshot().state is BreakerState.OPEN
    error = refused(breaker)
    assert isinstance(error, GraphTransientError) and error.retryable
    assert error.kind is ErrorType.GRAPH_TRANSIENT
    assert error.retry_after == timedelta(seconds=10)
    assert error.host == HOST and HOST in str(error) and "HTTP 500 (#2)" in str(error)


def test_a_refused_media_publish_is_transient_never_outcome_unknown(breaker: HostBreaker) -> None:
    fail(breaker, 3)
    error = refused(breaker, Operation.MEDIA_PUBLISH)
    assert not isinstance(error, OutcomeUnknownError)
    assert error.operation is Operation.MEDIA_PUBLISH and error.kind is ErrorType.GRAPH_TRANSIENT


def test_a_refusal_crosses_the_activity_edge_as_a_retryable_transient_error_with_its_wait(
    breaker: HostBreaker, clock: ManualClock
) -> None:
    fail(breaker, 3)
    clock.advance(7.5)
    application_error = as_application_error(refused(breaker, Operation.MEDIA_PUBLISH))
    assert application_error.type == ErrorType.GRAPH_TRANSIENT and not application_error.non_retryable
    assert application_error.next_retry_delay == timedelta(seconds=2.5)
    assert "not sent: the circuit breaker for graph.facebook.com is open" in application_error.message


def test_an_answer_resets_the_count(breaker: HostBreaker) -> None:
    fail(breaker, 2)
    breaker.admit(Operation.GET_MEDIA).succeeded()
    fail(breaker, 2)
    assert breaker.snapshot().state is BreakerState.CLOSED
    assert breaker.snapshot().consecutive_failures == 2


def test_the_retry_hint_counts_down_to_the_half_open_probe(breaker: HostBreaker, clock: ManualClock) -> None:
    fail(breaker, 3)
    clock.advance(4)
    assert refused(breaker).retry_after == timedelta(seconds=6)


def test_half_open_lets_only_the_probes_through_and_one_answer_closes_it(
    breaker: HostBreaker, clock: ManualClock
) -> None:
    fail(breaker, 3)
    clock.advance(10)
    probes = [breaker.admit(Operation.GET_MEDIA), breaker.admit(Operation.CONTAINER_STATUS)]
    assert all(p.probe for p in probes) and breaker.snapshot().state is BreakerState.HALF_OPEN
    # Every other call is refused while the probes are out, told to come back in two seconds.
    assert refused(breaker).retry_after == timedelta(seconds=2)
    probes[0].succeeded()
    assert breaker.snapshot().state is BreakerState.CLOSED
    permits = [breaker.admit(Operation.GET_MEDIA) for _ in range(10)]
    assert not any(p.probe for p in permits)
    # The other probe's late failure belongs to the half-open period that is over: it changes nothing.
    probes[1].failed("ReadTimeout")
    assert breaker.snapshot().consecutive_failures == 0


def test_a_failed_probe_reopens_for_twice_as_long_up_to_the_cap(
    breaker: HostBreaker, clock: ManualClock
) -> None:
    fail(breaker, 3)
    waits = []
    for _ in range(4):
        clock.advance(refused(breaker).retry_after.total_seconds())  # type: ignore[union-attr]
        breaker.admit(Operation.GET_MEDIA).failed("ConnectError")
        assert breaker.snapshot().state is BreakerState.OPEN
        waits.append(refused(breaker).retry_after)
    assert waits == [timedelta(seconds=s) for s in (20, 35, 35, 35)]
    # Recovery resets the growth: the next outage starts again at the base duration.
    clock.advance(35)
    breaker.admit(Operation.GET_MEDIA).succeeded()
    fail(breaker, 3)
    assert refused(breaker).retry_after == timedelta(seconds=10)


def test_the_probe_rate_is_bounded_while_the_host_stays_down(
    breaker: HostBreaker, clock: ManualClock
) -> None:
    """Many waiting calls, asking every second for five minutes: the host sees at most two probes per open
    period (10, 20, 35, 35, ... seconds)."""
    fail(breaker, 3)
    sent = 0
    for _ in range(300):
        clock.advance(1)
        for _ in range(50):
            try:
                permit = breaker.admit(Operation.CONTAINER_STATUS)
            except GraphCircuitOpenError:
                continue
            sent += 1
            permit.failed("HTTP 503")
    # Open periods starting at 0 s: 10, 30, 65, 100, ... 275: nine half-open moments, one failed probe each.
    assert sent == 9
    assert breaker.snapshot().rejected_total == 300 * 50 - 9


def test_a_probe_released_without_a_verdict_frees_its_slot(breaker: HostBreaker, clock: ManualClock) -> None:
    fail(breaker, 3)
    clock.advance(10)
    first, second = breaker.admit(Operation.GET_MEDIA), breaker.admit(Operation.GET_MEDIA)
    refused(breaker)
    first.release()  # e.g. the activity was cancelled
    third = breaker.admit(Operation.GET_MEDIA)
    assert third.probe and breaker.snapshot().state is BreakerState.HALF_OPEN
    second.failed("RemoteProtocolError")
    assert breaker.snapshot().state is BreakerState.OPEN
    third.succeeded()  # from the half-open period that ended: ignored
    assert breaker.snapshot().state is BreakerState.OPEN


def test_outcomes_of_calls_admitted_before_it_opened_are_ignored(breaker: HostBreaker) -> None:
    slow: list[Permit] = [breaker.admit(Operation.GET_MEDIA) for _ in range(2)]
    fail(breaker, 3)
    slow[0].succeeded()
    assert breaker.snapshot().state is BreakerState.OPEN
    slow[1].failed("ReadTimeout")
    assert refused(breaker).retry_after == timedelta(seconds=10)
    assert breaker.snapshot().opened_total == 1


def test_only_a_first_outcome_counts(breaker: HostBreaker) -> None:
    permit = breaker.admit(Operation.GET_MEDIA)
    permit.failed("HTTP 500")
    permit.failed("HTTP 500")
    permit.release()
    assert breaker.snapshot().consecutive_failures == 1


@pytest.mark.parametrize(
    ("status", "error", "operation", "failure"),
    [
        (
            500,
            {"code": 2, "is_transient": True, "message": "Service temporarily unavailable"},
            Operation.GET_MEDIA,
            True,
        ),
        (500, {"code": 2, "is_transient": True}, Operation.MEDIA_PUBLISH, True),  # OutcomeUnknownError
        (400, {"code": 1, "message": "An unknown error occurred"}, Operation.GET_MEDIA, True),
        (503, None, Operation.GET_MEDIA, True),
        (502, None, Operation.CREATE_COMMENT, True),
        (400, {"code": 4, "message": "Application request limit reached"}, Operation.GET_MEDIA, False),
        (400, {"code": 17}, Operation.MEDIA_PUBLISH, False),
        (503, {"code": 613}, Operation.GET_MEDIA, False),
        (429, None, Operation.GET_MEDIA, False),
        (400, {"code": 9, "error_subcode": 2207042}, Operation.MEDIA_PUBLISH, False),
        (400, {"code": 190, "error_subcode": 463}, Operation.GET_MEDIA, False),
        (400, {"code": 100, "message": "Invalid parameter"}, Operation.CREATE_CONTAINER, False),
        (400, {"code": 9007, "error_subcode": 2207027}, Operation.MEDIA_PUBLISH, False),
        (400, {"code": -2, "error_subcode": 2207001}, Operation.CREATE_CONTAINER, True),
        (400, {"code": 36003, "error_subcode": 2207009}, Operation.CREATE_CONTAINER, False),
    ],
)
def test_what_counts_as_the_host_failing(
    status: int, error: dict[str, object] | None, operation: Operation, failure: bool
) -> None:
    assert is_host_failure(answer(status, error, operation)) is failure


@pytest.mark.parametrize(
    ("exc", "verdict"),
    [
        (httpx.ConnectError("refused"), True),
        (httpx.ConnectTimeout("slow"), True),
        (httpx.ReadTimeout("slow"), True),
        (httpx.RemoteProtocolError("dropped"), True),
        (httpx.ReadError("reset"), True),
        (httpx.PoolTimeout("our own pool is full"), None),
        (httpx.UnsupportedProtocol("bad url"), None),
        (httpx.TooManyRedirects("loop"), False),
    ],
)
def test_what_transport_errors_say_of_the_host(exc: httpx.HTTPError, verdict: bool | None) -> None:
    assert is_host_unreachable(exc) is verdict


def test_recording_helpers_follow_the_verdicts(breaker: HostBreaker) -> None:
    for _ in range(5):
        breaker.admit(Operation.GET_MEDIA).record_transport_error(httpx.PoolTimeout("full"))
        breaker.admit(Operation.GET_MEDIA).record_error(answer(400, {"code": 17}))
    assert breaker.snapshot().state is BreakerState.CLOSED
    for _ in range(3):
        breaker.admit(Operation.GET_MEDIA).record_transport_error(httpx.ConnectError("refused"))
    assert breaker.snapshot().state is BreakerState.OPEN
    assert breaker.snapshot().last_failure == "ConnectError"


def test_snapshot_lists_every_host_with_its_state_since_and_counters(
    registry: BreakerRegistry, clock: ManualClock
) -> None:
    down, up = registry.for_host("graph.instagram.com"), registry.for_host(HOST)
    assert registry.for_host(HOST) is up
    up.admit(Operation.GET_MEDIA).succeeded()
    clock.advance(5)
    opened_at = clock.now()
    fail(down, 3)
    refused(down)
    refused(down)
    clock.advance(3)
    first, second = registry.snapshot()
    assert (first.host, first.state, first.since) == (
        "graph.facebook.com",
        BreakerState.CLOSED,
        clock.wall - timedelta(seconds=8),
    )
    assert first.retry_after is None and first.opened_total == first.rejected_total == 0
    assert (second.host, second.state, second.since) == ("graph.instagram.com", BreakerState.OPEN, opened_at)
    assert second.retry_after == timedelta(seconds=7)
    assert (second.consecutive_failures, second.opened_total, second.rejected_total) == (3, 1, 2)
    assert second.last_failure == "HTTP 500 (#2)"
    clock.advance(7)
    probe = down.admit(Operation.GET_MEDIA)
    (_, half_open) = registry.snapshot()
    assert half_open.state is BreakerState.HALF_OPEN and half_open.since == clock.wall
    assert half_open.retry_after is None  # a second probe may still go (half_open_probes=2)
    second_probe = down.admit(Operation.GET_MEDIA)
    assert registry.snapshot()[1].retry_after == timedelta(
        seconds=2
    )  # both probes out: refused calls wait 2 s
    assert registry.snapshot()[1].to_json() == {
        "host": "graph.instagram.com",
        "state": "half_open",
        "since": "2026-12-02T09:00:15+00:00",
        "consecutive_failures": 3,
        "retry_after_seconds": 2.0,
        "opened_total": 1,
        "rejected_total": 2,
        "last_failure": "HTTP 500 (#2)",
    }
    probe.succeeded()
    second_probe.release()
    assert registry.snapshot()[1].state is BreakerState.CLOSED


def test_every_state_change_is_logged_with_the_host_only(
    breaker: HostBreaker, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chronogram.instagram.breaker")
    fail(breaker, 3)
    refused(breaker)
    clock.advance(10)
    breaker.admit(Operation.GET_MEDIA).failed("HTTP 500 (#2)")
    clock.advance(20)
    breaker.admit(Operation.GET_MEDIA).succeeded()
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in lines] == [
        logging.WARNING,
        logging.INFO,
        logging.WARNING,
        logging.INFO,
        logging.INFO,
    ]
    assert all(f"graph circuit breaker for {HOST} " in text for _, text in lines)
    opened, _, reopened, half_open, closed = (text for _, text in lines)
    assert "open: 3 consecutive failures, the last HTTP 500 (#2)" in opened and "for 10 s" in opened
    assert "a probe failed" in reopened and "for 20 s" in reopened
    assert "half open" in half_open
    assert (
        "closed" in closed
        and "open since 2026-12-02T09:00:00+00:00" in closed
        and "1 call(s) not sent" in closed
    )


def test_config_checks_and_settings() -> None:
    assert [CONFIG.open_duration(n) for n in (1, 2, 3, 50)] == [10, 20, 35, 35]
    with pytest.raises(ValueError):
        BreakerConfig(failure_threshold=0)
    with pytest.raises(ValueError):
        BreakerConfig(open_seconds=30, max_open_seconds=10)
    registry = BreakerRegistry.from_settings(
        Settings(
            graph_breaker_failure_threshold=4, graph_breaker_open_seconds=5, graph_breaker_max_open_seconds=1
        )
    )
    assert registry is not None
    assert registry.config == BreakerConfig(
        failure_threshold=4, open_seconds=5, max_open_seconds=5, half_open_probes=1
    )
    assert BreakerRegistry.from_settings(Settings(graph_breaker_enabled=False)) is None
