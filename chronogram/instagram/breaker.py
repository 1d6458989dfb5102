"""A circuit breaker per Graph API host: when a host keeps failing, stop sending it calls for a while.

During a Meta outage every post of a worker keeps calling, and every call waits for its timeout or its 500. The
breaker turns that into a local, instant refusal after ``failure_threshold`` consecutive failures, and lets the
waiting calls through again one probe at a time::

    closed ──(threshold consecutive failures)──► open ──(open duration elapsed)──► half_open
      ▲                                           ▲                                   │
      └──────────────(a probe succeeds)───────────┼───────────────────────────────────┤
                                                  └──(a probe fails: open for longer)─┘

- **closed**: every call is sent. A failure adds one to the count, any answer of the host resets it.
- **open**: no call is sent; :meth:`HostBreaker.admit` raises :class:`GraphCircuitOpenError` (a
  :class:`~chronogram.instagram.errors.GraphTransientError`, kind ``GraphTransientError``) whose ``retry_after`` is
  the time left until the breaker lets a probe through. Nothing sent means nothing done: a ``media_publish``
  refused here certainly published nothing.
- **half_open**: at most ``half_open_probes`` calls at a time are sent as probes; the others are refused with a
  hint of two seconds (a probe to a host that is back answers within that; if it failed, they are refused again
  with the new open time). The first probe to come back decides: an answer closes the breaker, a failure
  opens it again for twice as long as last time (capped at ``max_open_seconds``). So while a host stays down, a
  worker sends it at most ``half_open_probes`` calls per open period.

What counts as a failure is about the host, not the request (:func:`is_host_failure`,
:func:`is_host_unreachable`): a transport error (connection refused or reset, timeout), an HTTP 5xx, or Meta's
codes 1 and 2 (unknown error, service unavailable) and -1/-2. Everything else is the host answering, so it counts
as a success: invalid requests, auth errors, not-ready containers, quota, and **throttles** (codes 4, 17, 32, 613,
80001-80014, HTTP 429). Throttles are left out on purpose: most are per account or per user, so one busy account
must not stop every other account's posts; they already carry Meta's own wait (``retry_after``) for the calls they
concern. A pool timeout (the worker's own connection pool was full) and an unusable URL never reached the host and
give no verdict.

One :class:`BreakerRegistry` per worker process, built at start-up and given to the Graph client;
:meth:`BreakerRegistry.snapshot` is what readiness checks and metrics read. Each state change is logged (WARNING
when a breaker opens, INFO otherwise) with the host name only: never a URL, a query or a token. The breaker runs
on the worker's event loop and takes no lock: admitting a call and recording its outcome never await.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

import httpx

from chronogram.instagram.errors import (
    ErrorClass,
    GraphAPIError,
    GraphErrorDetails,
    GraphTransientError,
    Operation,
    OutcomeUnknownError,
)
from chronogram.settings import Settings

__all__ = [
    "BreakerConfig",
    "BreakerRegistry",
    "BreakerSnapshot",
    "BreakerState",
    "Clock",
    "GraphCircuitOpenError",
    "HostBreaker",
    "Permit",
    "SystemClock",
    "host_of",
    "is_host_failure",
    "is_host_unreachable",
]

logger = logging.getLogger(__name__)

# Meta's "something broke on our side" codes: 1 unknown error, 2 service unavailable, -1/-2 the legacy ones.
_OUTAGE_CODES = frozenset({-2, -1, 1, 2})
# Never left this machine for a reason of its own (full pool, bad URL): says nothing about the host.
_LOCAL_TRANSPORT_ERRORS = (httpx.PoolTimeout, httpx.UnsupportedProtocol)
# The retry hint of calls refused while the probes are out: soon, since a host that is back answers a probe fast.
_PROBE_WAIT_SECONDS = 2.0


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class GraphCircuitOpenError(GraphTransientError):
    """The call was **not sent**: the host's breaker is open (or its probes are all in flight).

    Transient like any outage (kind ``GraphTransientError``), and never an ``OutcomeUnknownError``, even for
    ``media_publish``: nothing left the worker. ``retry_after`` is the time until the breaker lets a probe through.
    """

    _fallback_user_message = "Instagram is not answering; calls to it are paused for a short while."

    def __init__(self, details: GraphErrorDetails, *, host: str) -> None:
        super().__init__(details)
        self.host = host


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds, for durations; never goes back."""
        ...

    def now(self) -> datetime:
        """Wall-clock time (UTC), only to say since when a breaker is in its state."""
        ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """See the ``graph_breaker_*`` settings."""

    failure_threshold: int = 10
    open_seconds: float = 10.0
    max_open_seconds: float = 60.0
    half_open_probes: int = 1

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.half_open_probes < 1:
            raise ValueError("failure_threshold and half_open_probes must be at least 1")
        if not 0 < self.open_seconds <= self.max_open_seconds:
            raise ValueError("open_seconds must be positive and at most max_open_seconds")

    @classmethod
    def from_settings(cls, settings: Settings) -> BreakerConfig:
        return cls(
            failure_threshold=settings.graph_breaker_failure_threshold,
            open_seconds=settings.graph_breaker_open_seconds,
            max_open_seconds=max(
                settings.graph_breaker_max_open_seconds, settings.graph_breaker_open_seconds
            ),
            half_open_probes=settings.graph_breaker_half_open_probes,
        )

    def open_duration(self, consecutive_opens: int) -> float:
        """How long the ``consecutive_opens``-th opening in a row lasts (1 = the first): doubling, capped."""
        return min(self.open_seconds * 2.0 ** min(consecutive_opens - 1, 32), self.max_open_seconds)


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """One host's breaker as readiness checks and metrics see it."""

    host: str
    state: BreakerState
    # When it entered this state (UTC).
    since: datetime
    consecutive_failures: int
    # Open: how long until a probe may go. Half open with every probe in flight: the hint refused calls get.
    retry_after: timedelta | None
    # Counters since the worker started: times it opened (reopenings after a failed probe included), calls it
    # refused to send.
    opened_total: int
    rejected_total: int
    # The last failure's short reason ("HTTP 500 (#2)", "ReadTimeout"), without URL or token.
    last_failure: str | None

    def to_json(self) -> dict[str, str | int | float | None]:
        """For a health endpoint: plain JSON values, ``retry_after`` in seconds."""
        return {
            "host": self.host,
            "state": self.state.value,
            "since": self.since.isoformat(),
            "consecutive_failures": self.consecutive_failures,
            "retry_after_seconds": None
            if self.retry_after is None
            else round(self.retry_after.total_seconds(), 3),
            "opened_total": self.opened_total,
            "rejected_total": self.rejected_total,
            "last_failure": self.last_failure,
        }


def is_host_unreachable(exc: httpx.HTTPError) -> bool | None:
    """Did this transport error show the host failing? ``None``: no verdict (the call never reached it)."""
    if isinstance(exc, _LOCAL_TRANSPORT_ERRORS):
        return None
    return isinstance(exc, httpx.TransportError)


def is_host_failure(error: GraphAPIError) -> bool:
    """Does this classified answer show the host failing (5xx, codes 1/2/-1/-2) rather than answering?"""
    underlying = error.underlying if isinstance(error, OutcomeUnknownError) else error.error_class
    if underlying in (ErrorClass.THROTTLED, ErrorClass.QUOTA_REACHED):
        return False
    if error.code is not None and error.code in _OUTAGE_CODES:
        return True
    return error.http_status is not None and error.http_status >= 500


def _reason(error: GraphAPIError) -> str:
    status = "" if error.http_status is None else f"HTTP {error.http_status}"
    code = "" if error.code is None else f"(#{error.code})"
    return " ".join(part for part in (status, code) if part) or type(error).__name__


class Permit:
    """Leave to send one call. The first outcome recorded counts: :meth:`succeeded`, :meth:`failed` (or the
    ``record_*`` helpers deciding between them), or :meth:`release` when the call ended without showing anything
    about the host (cancelled, never sent). Always release in a ``finally``: releasing after a verdict is a no-op."""

    __slots__ = ("_breaker", "_done", "_generation", "_probe")

    def __init__(self, breaker: HostBreaker, generation: int, probe: bool) -> None:
        self._breaker = breaker
        self._generation = generation
        self._probe = probe
        self._done = False

    @property
    def probe(self) -> bool:
        return self._probe

    def succeeded(self) -> None:
        if self._finish():
            self._breaker._succeeded(self._generation)

    def failed(self, reason: str) -> None:
        if self._finish():
            self._breaker._failed(self._generation, reason)

    def release(self) -> None:
        self._finish()

    def record_error(self, error: GraphAPIError) -> None:
        """The client's classified error for an answer of the host."""
        if is_host_failure(error):
            self.failed(_reason(error))
        else:
            self.succeeded()

    def record_transport_error(self, exc: httpx.HTTPError) -> None:
        verdict = is_host_unreachable(exc)
        if verdict is None:
            self.release()
        elif verdict:
            self.failed(type(exc).__name__)
        else:
            self.succeeded()

    def _finish(self) -> bool:
        if self._done:
            return False
        self._done = True
        if self._probe:
            self._breaker._probe_done(self._generation)
        return True


class HostBreaker:
    """The breaker of one host. Get it from :meth:`BreakerRegistry.for_host`."""

    def __init__(self, host: str, config: BreakerConfig, clock: Clock) -> None:
        self.host = host
        self._config = config
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._since = clock.now()
        # Bumped on every state change: outcomes of calls admitted before it are ignored (a slow call that
        # fails after the breaker opened must not extend it; one that succeeds must not close it).
        self._generation = 0
        self._failures = 0
        self._consecutive_opens = 0
        self._open_until = 0.0
        self._probes_in_flight = 0
        self._opened_total = 0
        self._rejected_total = 0
        self._last_failure: str | None = None
        # The first opening of the current run of openings, for the closing line.
        self._opened_at = self._since
        self._rejected_at_open = 0

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def _probe_wait(self) -> float:
        return min(_PROBE_WAIT_SECONDS, self._config.open_seconds)

    def admit(self, operation: Operation) -> Permit:
        """Leave to send one call, or :class:`GraphCircuitOpenError` (and the call must not be sent)."""
        if self._state is BreakerState.OPEN:
            remaining = self._open_until - self._clock.monotonic()
            if remaining > 0:
                raise self._refuse(operation, remaining)
            self._enter(BreakerState.HALF_OPEN)
            logger.info(
                "graph circuit breaker for %s half open: letting up to %d probe call(s) through",
                self.host,
                self._config.half_open_probes,
            )
        if self._state is BreakerState.HALF_OPEN:
            if self._probes_in_flight >= self._config.half_open_probes:
                raise self._refuse(operation, self._probe_wait)
            self._probes_in_flight += 1
            return Permit(self, self._generation, probe=True)
        return Permit(self, self._generation, probe=False)

    def snapshot(self) -> BreakerSnapshot:
        retry_after: float | None = None
        if self._state is BreakerState.OPEN:
            retry_after = max(self._open_until - self._clock.monotonic(), 0.0)
        elif (
            self._state is BreakerState.HALF_OPEN and self._probes_in_flight >= self._config.half_open_probes
        ):
            retry_after = self._probe_wait
        return BreakerSnapshot(
            host=self.host,
            state=self._state,
            since=self._since,
            consecutive_failures=self._failures,
            retry_after=None if retry_after is None else timedelta(seconds=retry_after),
            opened_total=self._opened_total,
            rejected_total=self._rejected_total,
            last_failure=self._last_failure,
        )

    # --- transitions, called by Permit ----------------------------------------------------------------------

    def _succeeded(self, generation: int) -> None:
        if generation != self._generation:
            return
        if self._state is BreakerState.HALF_OPEN:
            logger.info(
                "graph circuit breaker for %s closed: the host answered a probe (open since %s, %d call(s) not sent)",
                self.host,
                self._opened_at.isoformat(timespec="seconds"),
                self._rejected_total - self._rejected_at_open,
            )
            self._consecutive_opens = 0
            self._enter(BreakerState.CLOSED)
        self._failures = 0

    def _failed(self, generation: int, reason: str) -> None:
        if generation != self._generation:
            return
        self._last_failure = reason
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN:
            self._open(f"a probe failed ({reason})")
        elif self._failures >= self._config.failure_threshold:
            self._open(f"{self._failures} consecutive failures, the last {reason}")

    def _probe_done(self, generation: int) -> None:
        if generation == self._generation:
            self._probes_in_flight -= 1

    def _open(self, why: str) -> None:
        self._consecutive_opens += 1
        duration = self._config.open_duration(self._consecutive_opens)
        if self._consecutive_opens == 1:
            self._opened_at = self._clock.now()
            self._rejected_at_open = self._rejected_total
        self._enter(BreakerState.OPEN)
        self._open_until = self._clock.monotonic() + duration
        self._opened_total += 1
        logger.warning(
            "graph circuit breaker for %s open: %s; no call is sent to it for %.0f s, then up to %d probe(s) at a time",
            self.host,
            why,
            duration,
            self._config.half_open_probes,
        )

    def _enter(self, state: BreakerState) -> None:
        self._state = state
        self._since = self._clock.now()
        self._generation += 1
        self._probes_in_flight = 0

    def _refuse(self, operation: Operation, wait_seconds: float) -> GraphCircuitOpenError:
        self._rejected_total += 1
        since = self._since.isoformat(timespec="seconds")
        details = GraphErrorDetails(
            operation=operation,
            message=(
                f"not sent: the circuit breaker for {self.host} is {self._state.value} since {since} "
                f"(last failure: {self._last_failure or 'unknown'}); "
                + (
                    f"a probe may go in {wait_seconds:.0f} s"
                    if self._state is BreakerState.OPEN
                    else f"a probe is out, try again in {wait_seconds:.0f} s"
                )
            ),
            is_transient=True,
            retry_after=timedelta(seconds=wait_seconds),
        )
        return GraphCircuitOpenError(details, host=self.host)


class BreakerRegistry:
    """Every host's breaker in one worker process, created on first use. Build one at worker start-up and give it
    to every :class:`~chronogram.instagram.client.GraphClient` of the process."""

    def __init__(self, config: BreakerConfig | None = None, *, clock: Clock | None = None) -> None:
        self._config = config or BreakerConfig()
        self._clock: Clock = clock or SystemClock()
        self._breakers: dict[str, HostBreaker] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> BreakerRegistry | None:
        """The worker's registry, or None when ``graph_breaker_enabled`` is off."""
        return cls(BreakerConfig.from_settings(settings)) if settings.graph_breaker_enabled else None

    @property
    def config(self) -> BreakerConfig:
        return self._config

    def for_host(self, host: str) -> HostBreaker:
        breaker = self._breakers.get(host)
        if breaker is None:
            breaker = self._breakers[host] = HostBreaker(host, self._config, self._clock)
        return breaker

    def snapshot(self) -> tuple[BreakerSnapshot, ...]:
        """Every host called so far, sorted by host."""
        return tuple(self._breakers[host].snapshot() for host in sorted(self._breakers))


def host_of(url: str | httpx.URL) -> str:
    """The key of a URL's breaker: host and port, never the path or the query."""
    parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    return parsed.netloc.decode("ascii")
