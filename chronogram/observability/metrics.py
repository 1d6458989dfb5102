"""The product's Prometheus metrics, what feeds them, and the Temporal SDK's own metrics beside them.

Each process (API, worker) serves the metrics it made: the API on ``GET /metrics``, the worker on its own port
(``CHRONOGRAM_WORKER_METRICS_PORT``), where the SDK's metrics (``temporal_*``) are served too. Prometheus adds them
up. Labels stay few and bounded (statuses, transitions, error codes, Graph operations): never a post, account or
user id.

Post transitions are heard at the lifecycle's one observation point (``chronogram.lifecycle.observe``) and counted
when their transaction commits: a transition rolled back with its transaction is never counted. (Counted at
SQLAlchemy's commit event, just before the database commits: a commit that then fails would count a change that
did not happen; the database refusing a commit that already passed every statement is rare enough to accept.)
"""

from __future__ import annotations

import contextvars
import logging
import socket
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.registry import REGISTRY
from sqlalchemy import Connection, Engine, Pool, event, func, select
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from chronogram.enums import DeliveryChannel, PostStatus
from chronogram.instagram.breaker import BreakerRegistry, BreakerState
from chronogram.lifecycle import StatusChange, observe
from chronogram.models import Post, table_of

__all__ = [
    "CONTENT_TYPE_LATEST",
    "count_delivery",
    "count_graph_call",
    "install_transition_metrics",
    "render",
    "sdk_runtime",
]

log = logging.getLogger("chronogram.metrics")

# No *_created series beside every counter and histogram: twice the series for a timestamp nobody queries.
disable_created_metrics()  # type: ignore[no-untyped-call]

_POSTS = table_of(Post)

# Seconds. Publishing on time is the product: buckets are fine under a few seconds, coarse beyond.
_LAG_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)
_CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 90)

POST_TRANSITIONS = Counter(
    "chronogram_post_transitions",
    "Post status changes, counted when their transaction commits.",
    ["transition", "from_status", "to_status"],
)
POST_OUTCOMES = Counter(
    "chronogram_post_outcomes",
    "Posts that reached published, failed or cancelled; error_code is empty unless failed.",
    ["status", "error_code"],
)
PUBLISH_LAG = Histogram(
    "chronogram_publish_lag_seconds",
    "From a post's publish_at to Instagram's answer to media_publish.",
    buckets=_LAG_BUCKETS,
)
QUOTA_WAITS = Counter(
    "chronogram_quota_waits",
    "Publishing quota checks that found an account's 24-hour quota used up: the post waits, then checks again.",
)
GRAPH_REQUESTS = Counter(
    "chronogram_graph_requests",
    "Graph API calls by operation, outcome (ok, error) and error code (empty when ok).",
    ["operation", "outcome", "error_code"],
)
GRAPH_LATENCY = Histogram(
    "chronogram_graph_request_duration_seconds",
    "Graph API call latency, by operation and outcome.",
    ["operation", "outcome"],
    buckets=_CALL_BUCKETS,
)
POSTS_BY_STATUS = Gauge(
    "chronogram_posts", "Posts by status, read from the database at scrape time.", ["status"]
)
POSTS_OVERDUE = Gauge(
    "chronogram_posts_overdue",
    "Scheduled posts whose publish_at passed more than a minute ago (read at scrape time).",
)
POSTS_DUE_NEXT_HOUR = Gauge(
    "chronogram_posts_due_next_hour", "Scheduled posts due within the next hour (read at scrape time)."
)
POSTS_DELAYED = Gauge(
    "chronogram_posts_delayed",
    "Posts whose status is delayed (waiting on a reconnect or a deadline), read at scrape time; 0 while no such "
    "status exists.",
)
TASK_QUEUE_POLLERS = Gauge(
    "chronogram_task_queue_pollers",
    "Workers polling the posts' task queue, by task type, as Temporal reports them to the API at scrape time; "
    "-1 when Temporal could not be asked.",
    ["task_type"],
)
# The worker's circuit breakers (per Graph API host), read from their registry at scrape time.
GRAPH_CIRCUIT_STATE = Gauge(
    "chronogram_graph_circuit_state",
    "Graph API circuit breaker state per host: 0 closed, 1 half-open, 2 open.",
    ["host"],
)

# Notifications (webhooks and email), counted by the delivery activities (activities/notifications.py).
NOTIFICATION_DELIVERIES = Counter(
    "chronogram_notification_deliveries",
    "Notification delivery attempts and ends by channel (webhook, email) and outcome: delivered, failed_attempt "
    "(to be retried), gone (a webhook answered 410 Gone: its endpoint is disabled), given_up (retries spent for "
    "the whole window; a webhook's endpoint is disabled).",
    ["channel", "outcome"],
)
NOTIFICATION_LATENCY = Histogram(
    "chronogram_notification_latency_seconds",
    "From an event's occurred_at (its transition's commit) to its delivery (the receiver's 2xx, the mail server's "
    "acceptance), by channel; retried deliveries included.",
    ["channel"],
    buckets=_LAG_BUCKETS,
)


class NotificationOutcome(StrEnum):
    DELIVERED = "delivered"
    FAILED_ATTEMPT = "failed_attempt"
    GONE = "gone"
    GIVEN_UP = "given_up"


# Every series exists from the start, at zero: a ratio or an increase over them needs no first event.
for _channel in DeliveryChannel:
    NOTIFICATION_LATENCY.labels(_channel.value)
    for _outcome in NotificationOutcome:
        if _outcome is not NotificationOutcome.GONE or _channel is DeliveryChannel.WEBHOOK:
            NOTIFICATION_DELIVERIES.labels(_channel.value, _outcome.value)

# How late a scheduled post may be before it counts as overdue: the workflow wakes a few seconds early and
# publishing takes a few calls.
OVERDUE_AFTER = timedelta(minutes=1)


# --- transitions, counted on commit --------------------------------------------------------------------------------

_PENDING = "chronogram.metrics.pending"
OUTCOME_STATUSES = frozenset({PostStatus.PUBLISHED, PostStatus.FAILED, PostStatus.CANCELLED})


@dataclass(frozen=True)
class Outcome:
    """A terminal change with what the counters and the outcome log line need that the change itself lacks."""

    change: StatusChange
    account_id: int | None
    publish_at: datetime | None
    # When Instagram answered the post's media_publish (None for other outcomes).
    published_at: datetime | None = None
    # The context the change was made in (an activity's info, its trace, bound log fields): the listeners run in
    # it at commit, which may come on another thread (a group commit's).
    context: contextvars.Context | None = field(default=None, compare=False, repr=False)


OutcomeListener = Callable[[Outcome], None]

_outcome_listeners: list[OutcomeListener] = []
_installed = False


def install_transition_metrics(*listeners: OutcomeListener) -> None:
    """Subscribe the counters to the lifecycle (once per process), and ``listeners`` to every committed outcome
    (published, failed, cancelled)."""
    global _installed
    _outcome_listeners.extend(listener for listener in listeners if listener not in _outcome_listeners)
    if _installed:
        return
    _installed = True
    observe(_on_change)
    event.listen(Engine, "commit", _on_commit)
    event.listen(Engine, "rollback", _on_rollback)
    # A connection given back without commit or rollback events (closed in the middle of a transaction).
    event.listen(Pool, "reset", _on_reset)


_OUTCOME_QUERY = select(_POSTS.c.account_id, _POSTS.c.publish_at, _POSTS.c.published_at)


def _on_change(connection: Connection, change: StatusChange) -> None:
    account_id = publish_at = published_at = None
    context = None
    if change.to_status in OUTCOME_STATUSES:
        context = contextvars.copy_context()
        # One primary-key read, for outcomes only (a few per post).
        row = connection.execute(_OUTCOME_QUERY.where(_POSTS.c.id == change.post_id)).first()
        if row is not None:
            account_id, publish_at, published_at = row[0], row[1], row[2]
    outcome = Outcome(change, account_id, publish_at, published_at, context)
    connection.info.setdefault(_PENDING, []).append(outcome)


def _on_commit(connection: Connection) -> None:
    pending: list[Outcome] = connection.info.pop(_PENDING, [])
    for outcome in pending:
        _count(outcome)


def _on_rollback(connection: Connection) -> None:
    # An invalidated connection (its database connection lost) has no info to read; its pool record is reset, and
    # its pending changes with it (_on_reset).
    if not connection.invalidated:
        connection.info.pop(_PENDING, None)


def _on_reset(_dbapi_connection: Any, record: Any, _reset_state: Any) -> None:
    record.info.pop(_PENDING, None)


def _count(outcome: Outcome) -> None:
    change = outcome.change
    POST_TRANSITIONS.labels(
        change.transition.value,
        change.from_status.value if change.from_status else "none",
        change.to_status.value,
    ).inc()
    if change.to_status in OUTCOME_STATUSES:
        code = change.error_code.value if change.error_code and change.to_status is PostStatus.FAILED else ""
        POST_OUTCOMES.labels(change.to_status.value, code).inc()
        for listener in tuple(_outcome_listeners):
            try:
                if outcome.context is None:
                    listener(outcome)
                else:
                    outcome.context.run(listener, outcome)
            except Exception:  # a listener (a log line) must never undo a committed change
                log.exception("outcome listener failed")


# --- Graph API calls --------------------------------------------------------------------------------------------


def count_graph_call(operation: StrEnum, seconds: float, error_code: str | None) -> None:
    """The Graph client's ``on_call`` hook (chronogram.instagram.client.CallHook)."""
    outcome = "ok" if error_code is None else "error"
    GRAPH_REQUESTS.labels(operation.value, outcome, error_code or "").inc()
    GRAPH_LATENCY.labels(operation.value, outcome).observe(seconds)


def observe_publish_lag(publish_at: datetime, published: datetime | None = None) -> float:
    lag = ((published or datetime.now(UTC)) - _aware(publish_at)).total_seconds()
    PUBLISH_LAG.observe(max(lag, 0.0))
    return lag


def _aware(moment: datetime) -> datetime:
    # SQLite gives naive datetimes back; every time the project stores is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# --- notification deliveries ---------------------------------------------------------------------------------


def count_delivery(
    channel: DeliveryChannel, outcome: NotificationOutcome, occurred_at: datetime | None = None
) -> None:
    """One attempt's or one delivery's outcome; ``occurred_at`` (the event's) with DELIVERED: its latency."""
    NOTIFICATION_DELIVERIES.labels(channel.value, outcome.value).inc()
    if outcome is NotificationOutcome.DELIVERED and occurred_at is not None:
        latency = (datetime.now(UTC) - _aware(occurred_at)).total_seconds()
        NOTIFICATION_LATENCY.labels(channel.value).observe(max(latency, 0.0))


# --- gauges read at scrape time -------------------------------------------------------------------------------------


def refresh_post_gauges(engine: Engine, now: datetime | None = None) -> None:
    """Posts by status, overdue, due next hour, delayed: two aggregate queries on indexed columns."""
    moment = now or datetime.now(UTC)
    scheduled = _POSTS.c.status == PostStatus.SCHEDULED
    with engine.connect() as connection:
        counts = {
            str(status): int(count)
            for status, count in connection.execute(
                select(_POSTS.c.status, func.count()).group_by(_POSTS.c.status)
            )
        }
        overdue, due = connection.execute(
            select(
                func.count().filter(scheduled, _POSTS.c.publish_at < moment - OVERDUE_AFTER),
                func.count().filter(
                    scheduled,
                    _POSTS.c.publish_at >= moment,
                    _POSTS.c.publish_at < moment + timedelta(hours=1),
                ),
            )
        ).one()
    for status in PostStatus:
        POSTS_BY_STATUS.labels(status.value).set(counts.get(status.value, 0))
    POSTS_OVERDUE.set(overdue)
    POSTS_DUE_NEXT_HOUR.set(due)
    POSTS_DELAYED.set(counts.get("delayed", 0))


_CIRCUIT_VALUES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


def refresh_circuit_gauges(breakers: BreakerRegistry | None) -> None:
    """``chronogram_graph_circuit_state`` per host the worker has called, from the breakers' snapshot."""
    for snapshot in breakers.snapshot() if breakers is not None else ():
        GRAPH_CIRCUIT_STATE.labels(snapshot.host).set(_CIRCUIT_VALUES[snapshot.state])


# --- exposition ------------------------------------------------------------------------------------------------------


def render(extra: Iterable[bytes] = ()) -> bytes:
    """This process's metrics in Prometheus' text format, followed by ``extra`` (the SDK's, already rendered)."""
    return generate_latest(REGISTRY) + b"".join(extra)


# --- the Temporal SDK's metrics -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SdkMetrics:
    runtime: Runtime
    address: str  # host:port on the loopback interface, where the SDK serves its Prometheus text

    def scrape(self, timeout: float = 2.0) -> bytes:
        """The SDK's metrics, to be served beside the product's on one port (blocking: call from a thread)."""
        try:
            with urllib.request.urlopen(f"http://{self.address}/metrics", timeout=timeout) as response:
                body: bytes = response.read()
        except OSError as error:
            log.warning("the Temporal SDK's metrics are unavailable: %s", error)
            return b""
        return body


@lru_cache(maxsize=1)
def sdk_runtime() -> SdkMetrics:
    """One Temporal runtime per process whose metrics go to a Prometheus endpoint on a free loopback port; the
    worker serves them on its own port (``render``), so that only one port is exposed."""
    address = f"127.0.0.1:{_free_port()}"
    runtime = Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=address, durations_as_seconds=True, counters_total_suffix=True
            )
        )
    )
    return SdkMetrics(runtime=runtime, address=address)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
