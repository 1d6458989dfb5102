"""Delivery activities: a batch of first webhook attempts, one webhook attempt, and one email; each attempt signed,
10 s timeout, recorded in the delivery log, and counted (chronogram_notification_deliveries_total, and the latency
from the event to its delivery).

The first attempts of an endpoint's deliveries go out from its pump (``pump_deliveries``: a look at what is due
every few hundredths of a second while it runs, batches of requests side by side, one write each; the older
paths' ``deliver_due`` and ``send_first_attempts`` likewise); a delivery whose first attempt failed goes on
alone (``deliver_webhook``): an attempt that
fails raises a retryable ApplicationError, and Temporal retries it on the schedule the workflow gives
(RetrySchedule). The attempt's row says when the next one is due. Nothing here logs or raises a secret: the
signing secrets are decrypted for the request's headers only.
"""

from __future__ import annotations

import asyncio
import functools
import smtplib
import ssl
import time
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any, TypeVar

import httpx
from sqlalchemy import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from chronogram.contracts import (
    DeliverDueInput,
    DeliverDueReport,
    DeliveryOutcome,
    DeliveryRef,
    DeliveryReport,
    DueDeliveries,
    DueDeliveriesInput,
    DueHeads,
    DueHeadsInput,
    EmailInterface,
    ErrorType,
    FirstAttemptsInput,
    FirstAttemptsReport,
    GiveUpInput,
    PumpInput,
    PumpReport,
    RetrySchedule,
    WebhookDeliveryInterface,
    cap_error_text,
)
from chronogram.crypto import TokenCipher
from chronogram.enums import DeliveryChannel, DeliveryStatus
from chronogram.notifications import deliveries
from chronogram.notifications.email import render_email
from chronogram.notifications.signing import signed_headers
from chronogram.notifications.url_policy import UrlPolicy, UrlRefused
from chronogram.observability.metrics import NotificationOutcome, count_delivery
from chronogram.settings import Settings

T = TypeVar("T")

USER_AGENT = "Chronogram-Webhooks/1"
# A pump's look at what is due, while it runs: the most an event waits for it.
PUMP_POLL_SECONDS = 0.05
# A pump's batches out at once, and the first attempts in one.
PUMP_BATCHES = 4
BATCH_LIMIT = 200
# A receiver's answer is not read beyond this: its body is never stored, only its status.
_GONE = 410


def next_retry_at(schedule: RetrySchedule, *, attempt: int, first_scheduled: datetime) -> datetime | None:
    """When Temporal will try again after failed attempt ``attempt`` (1-based), or None if the window ends first."""
    wait = min(schedule.initial_seconds * 2 ** (attempt - 1), schedule.max_interval_seconds)
    due = datetime.now(UTC) + timedelta(seconds=wait)
    if due > first_scheduled + timedelta(seconds=schedule.window_seconds):
        return None
    return due


@dataclass(frozen=True)
class _Sent:
    """What one request came to: the receiver's status code, or why there was none."""

    status_code: int | None
    error: str | None
    latency_ms: int


class WebhookActivities(WebhookDeliveryInterface):
    """Async (httpx); the database calls run in threads."""

    def __init__(
        self,
        engine: Engine,
        http: httpx.AsyncClient,
        cipher: TokenCipher,
        policy: UrlPolicy,
        executor: Executor | None = None,
        *,
        retried_at_most: int,
    ) -> None:
        self._engine = engine
        # An endpoint's deliveries retried at once (Settings.webhook_retried_at_most): at this many the pump sends
        # it no new first attempt, and never more first attempts are out at once than could fail up to it (_room).
        self._retried_at_most = retried_at_most
        self._http = http
        self._cipher = cipher
        self._policy = policy
        # The notifications' own threads for the database (the worker's): never queued behind the publishing
        # activities' database calls on the event loop's default pool.
        self._executor = executor
        # The read of due_heads runs inside the endpoint workflow's task (a local activity): a thread of its own,
        # never queued behind writes waiting for SQLite's lock on the threads above (a workflow task held that
        # long times out, and the whole endpoint waits for its retry).
        # The pumps' reads too (what is due, the payloads): never behind a write waiting for the lock.
        self._reader = ThreadPoolExecutor(max_workers=2, thread_name_prefix="webhook-due-heads")

    async def _db(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, functools.partial(call, *args, **kwargs)
        )

    @activity.defn
    async def due_deliveries(self, request: DueDeliveriesInput) -> DueDeliveries:
        due = await self._db(
            deliveries.due_deliveries, self._engine, request.endpoint_id, limit=request.limit
        )
        return DueDeliveries(delivery_ids=[d for d, _ in due], ordering_keys=[k for _, k in due])

    @activity.defn
    async def deliver_webhook(self, request: DeliveryRef) -> DeliveryReport:
        """One attempt; a failed one raises, for Temporal to retry on the request's schedule."""
        try:
            job = await self._db(deliveries.webhook_job, self._engine, request.delivery_id, self._cipher)
        except deliveries.DeliveryGone:
            return DeliveryReport(DeliveryOutcome.SKIPPED)
        sent = await self._send(job, request.retry, await self._refusal(job.url))
        info = activity.info()
        attempt, outcome = _judge(
            job, sent, next_retry_at(request.retry, attempt=info.attempt, first_scheduled=info.scheduled_time)
        )
        await self._db(deliveries.record_attempts, self._engine, [attempt])
        await self._after([(job, outcome)])
        if outcome is DeliveryOutcome.RETRY:
            raise ApplicationError(
                f"webhook delivery {job.delivery_id} failed: {attempt.error}",
                type=ErrorType.WEBHOOK_DELIVERY_FAILED,
            )
        return DeliveryReport(outcome)

    @activity.defn
    async def due_heads(self, request: DueHeadsInput) -> DueHeads:
        """Read only: the workflow claims what it takes in its own state (the keys of its rounds out)."""
        heads, more = await asyncio.get_running_loop().run_in_executor(
            self._reader,
            functools.partial(
                deliveries.due_heads,
                self._engine,
                request.endpoint_id,
                busy_keys=request.busy_keys,
                limit=request.limit,
            ),
        )
        return DueHeads(delivery_ids=[d for d, _ in heads], ordering_keys=[k for _, k in heads], more=more)

    @activity.defn
    async def send_first_attempts(self, request: FirstAttemptsInput) -> FirstAttemptsReport:
        """The first attempt of each delivery still pending among those given, all side by side: one read, the
        requests at once, one write (as ``deliver_due``, the deliveries chosen by the workflow)."""
        jobs = await self._db(deliveries.webhook_jobs, self._engine, request.delivery_ids, self._cipher)
        by_id = await self._send_all(list(jobs.values()), request.retry)
        return FirstAttemptsReport(
            outcomes=[by_id.get(delivery_id, DeliveryOutcome.SKIPPED) for delivery_id in request.delivery_ids]
        )

    async def _send_all(
        self, todo: list[deliveries.WebhookJob], retry: RetrySchedule
    ) -> dict[int, DeliveryOutcome]:
        """First attempts side by side, recorded in one transaction, counted; each one's outcome by delivery."""
        # Again at every attempt (the name may resolve elsewhere now), once per URL: a batch is one endpoint's.
        refusals = {url: await self._refusal(url) for url in {job.url for job in todo}}
        sent = await asyncio.gather(*(self._send(job, retry, refusals[job.url]) for job in todo))
        retry_at = next_retry_at(retry, attempt=1, first_scheduled=datetime.now(UTC))
        judged = [_judge(job, result, retry_at) for job, result in zip(todo, sent, strict=True)]
        await self._db(deliveries.record_attempts, self._engine, [attempt for attempt, _ in judged])
        outcomes = [(job, outcome) for job, (_, outcome) in zip(todo, judged, strict=True)]
        await self._after(outcomes)
        return {job.delivery_id: outcome for job, outcome in outcomes}

    @activity.defn
    async def pump_deliveries(self, request: PumpInput) -> PumpReport:
        """Deliver the endpoint's events as they come (see ``PumpInput``): a look at what is due every
        ``PUMP_POLL_SECONDS`` (heartbeating), the first attempts of what it finds sent side by side at once, up to
        ``PUMP_BATCHES`` batches out; a post's next event goes when its previous one is recorded. A failed first
        attempt is recorded with its next retry (its post is held) and handed to the workflow, which retries it
        alone: the pump then takes nothing new, and returns when its batches are in. No more first attempts are
        out at once than ``_room`` allows: at ``retried_at_most`` deliveries retried, none (the pump returns at
        once), and the endpoint's new events wait, pending, until a retry succeeds, rather than each becoming a
        retried activity of the endpoint's workflow. Lost (a worker killed), it is retried by Temporal after its
        heartbeat timeout: what it had out is still pending and sent again, the same ``webhook-id``."""
        loop = asyncio.get_running_loop()
        began = idle_since = time.monotonic()
        out: dict[
            asyncio.Task[dict[int, DeliveryOutcome]], dict[int, int]
        ] = {}  # batch -> its deliveries' keys
        delivered = 0
        retries: dict[int, int] = {}
        gone = False
        retrying = set(request.retrying_ids)
        try:
            while True:
                activity.heartbeat()
                for batch in [batch for batch in out if batch.done()]:
                    keys = out.pop(batch)
                    for delivery_id, outcome in batch.result().items():
                        if outcome is DeliveryOutcome.DELIVERED:
                            delivered += 1
                        elif outcome is DeliveryOutcome.GONE:
                            gone = True
                        elif outcome is DeliveryOutcome.RETRY:
                            retries[delivery_id] = keys[delivery_id]
                            retrying.add(delivery_id)
                    idle_since = time.monotonic()
                stopping = (
                    gone
                    or bool(retries)
                    or delivered >= request.max_deliveries
                    or time.monotonic() - began >= request.max_seconds
                )
                found = False
                room = self._room(retrying, out.values(), delivered)
                if not stopping and len(out) < PUMP_BATCHES and room > 0:
                    due = await loop.run_in_executor(
                        self._reader,
                        functools.partial(
                            deliveries.pump_heads,
                            self._engine,
                            request.endpoint_id,
                            out_keys={key for keys in out.values() for key in keys.values()},
                            retrying_ids=retrying,
                            limit=room,
                        ),
                    )
                    for delivery_id, key in due.orphans:
                        retries[delivery_id] = key
                        retrying.add(delivery_id)
                    if due.heads:
                        found = True
                        idle_since = time.monotonic()
                        keys = dict(due.heads)
                        out[asyncio.create_task(self._send_batch(list(keys), request.retry))] = keys
                held = len(retrying) >= self._retried_at_most
                if not out and (stopping or held or time.monotonic() - idle_since >= request.linger_seconds):
                    return PumpReport(
                        delivered=delivered,
                        retry_ids=list(retries),
                        retry_keys=list(retries.values()),
                        gone=gone,
                        idle=not stopping,
                    )
                if not found:
                    if out:
                        await asyncio.wait(
                            out, timeout=PUMP_POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED
                        )
                    else:
                        await asyncio.sleep(PUMP_POLL_SECONDS)
        finally:
            for batch in out:
                batch.cancel()

    def _room(self, retrying: Collection[int], out: Iterable[Collection[int]], delivered: int) -> int:
        """How many new first attempts a look may send, at most a batch: to an endpoint with deliveries retried,
        what would bring them to ``retried_at_most`` if all that is out failed; to one with none, as many more
        as the pump has delivered (a window that starts at ``retried_at_most`` and doubles with every round a
        receiver answers), so that a receiver found dead gets no more than that."""
        in_flight = sum(len(keys) for keys in out)
        window = self._retried_at_most - len(retrying) if retrying else self._retried_at_most + delivered
        return min(BATCH_LIMIT, window - in_flight)

    async def _send_batch(self, delivery_ids: list[int], retry: RetrySchedule) -> dict[int, DeliveryOutcome]:
        """The first attempts of these deliveries (those still pending), side by side, recorded together."""
        jobs = await asyncio.get_running_loop().run_in_executor(
            self._reader, functools.partial(deliveries.webhook_jobs, self._engine, delivery_ids, self._cipher)
        )
        return await self._send_all(list(jobs.values()), retry)

    @activity.defn
    async def deliver_due(self, request: DeliverDueInput) -> DeliverDueReport:
        """The first attempt of each due delivery (one per post), all side by side: one read, the requests at
        once, one write. A failed attempt is recorded with its next retry (the schedule's first interval) and
        reported RETRY: the workflow retries it alone. Raises only for what is not the receiver's (the database):
        the workflow then runs it again, and it reads again what is still pending."""
        keys, more, jobs = await self._db(self._read_due, request)
        by_id = await self._send_all(list(jobs.values()), request.retry)
        return DeliverDueReport(
            delivery_ids=list(keys),
            ordering_keys=list(keys.values()),
            outcomes=[by_id.get(delivery_id, DeliveryOutcome.SKIPPED) for delivery_id in keys],
            more=more,
        )

    def _read_due(
        self, request: DeliverDueInput
    ) -> tuple[dict[int, int], bool, dict[int, deliveries.WebhookJob]]:
        heads, more = deliveries.due_heads(
            self._engine, request.endpoint_id, busy_keys=request.busy_keys, limit=request.limit
        )
        keys = dict(heads)
        return keys, more, deliveries.webhook_jobs(self._engine, list(keys), self._cipher)

    @activity.defn
    async def give_up_delivery(self, request: GiveUpInput) -> None:
        channel = await self._db(deliveries.give_up, self._engine, request.delivery_id)
        if channel is not None:
            count_delivery(channel, NotificationOutcome.GIVEN_UP)
        if request.endpoint_id is not None:
            await self._db(
                deliveries.disable_endpoint,
                self._engine,
                request.endpoint_id,
                reason="deliveries kept failing for the whole retry window",
            )

    async def _refusal(self, url: str) -> UrlRefused | None:
        try:
            await self._policy.check(url)
        except UrlRefused as refused:
            return refused
        return None

    async def _send(
        self, job: deliveries.WebhookJob, retry: RetrySchedule, refused: UrlRefused | None
    ) -> _Sent:
        if refused is not None:
            return _Sent(status_code=None, error=str(refused), latency_ms=0)
        started = time.monotonic()
        try:
            headers = signed_headers(
                event_id=job.event_id, timestamp=datetime.now(UTC), body=job.body, secrets_in_use=job.secrets
            )
            response = await self._http.post(
                job.url,
                content=job.body.encode("utf-8"),
                headers={**headers, "content-type": "application/json", "user-agent": USER_AGENT},
                timeout=retry.request_timeout_seconds,
                follow_redirects=False,
            )
        except httpx.HTTPError as failure:
            error = f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__
            return _Sent(status_code=None, error=error, latency_ms=_since(started))
        return _Sent(status_code=response.status_code, error=None, latency_ms=_since(started))

    async def _after(self, outcomes: list[tuple[deliveries.WebhookJob, DeliveryOutcome]]) -> None:
        """Counted, and an endpoint that answered 410 disabled (its owner told)."""
        gone: set[int] = set()
        for job, outcome in outcomes:
            if outcome is DeliveryOutcome.DELIVERED:
                count_delivery(DeliveryChannel.WEBHOOK, NotificationOutcome.DELIVERED, job.occurred_at)
            elif outcome is DeliveryOutcome.GONE:
                count_delivery(DeliveryChannel.WEBHOOK, NotificationOutcome.GONE)
                gone.add(job.endpoint_id)
            else:
                count_delivery(DeliveryChannel.WEBHOOK, NotificationOutcome.FAILED_ATTEMPT)
        for endpoint_id in sorted(gone):
            await self._db(
                deliveries.disable_endpoint,
                self._engine,
                endpoint_id,
                reason="the endpoint answered 410 Gone",
            )


def _judge(
    job: deliveries.WebhookJob, sent: _Sent, retry_at: datetime | None
) -> tuple[deliveries.Attempt, DeliveryOutcome]:
    """The attempt's line in the log and its outcome: a 2xx delivers, a 410 disables the endpoint, anything else
    is to be retried (at ``retry_at``, None if the window ends first)."""
    code = sent.status_code
    if code is not None and 200 <= code < 300:
        return deliveries.Attempt(
            job.delivery_id, code, sent.latency_ms, None, None, DeliveryStatus.DELIVERED
        ), DeliveryOutcome.DELIVERED
    if code == _GONE:
        return deliveries.Attempt(
            job.delivery_id, code, sent.latency_ms, "410 Gone", None, DeliveryStatus.FAILED
        ), DeliveryOutcome.GONE
    error = cap_error_text(sent.error if sent.error is not None else f"answered HTTP {code}")
    return deliveries.Attempt(
        job.delivery_id, code, sent.latency_ms, error, retry_at, DeliveryStatus.PENDING
    ), DeliveryOutcome.RETRY


def _since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


class EmailActivities(EmailInterface):
    """Blocking (smtplib): registered with the worker's thread pool."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings

    @activity.defn
    def send_email(self, request: DeliveryRef) -> DeliveryReport:
        try:
            job = deliveries.email_job(self._engine, request.delivery_id)
        except deliveries.DeliveryGone:
            return DeliveryReport(DeliveryOutcome.SKIPPED)
        message = render_email(job, sender=self._settings.smtp_sender)
        started = time.monotonic()
        try:
            self._send(message)
        except (OSError, smtplib.SMTPException) as failure:
            info = activity.info()
            retry_at = next_retry_at(request.retry, attempt=info.attempt, first_scheduled=info.scheduled_time)
            error = cap_error_text(f"{type(failure).__name__}: {failure}")
            deliveries.record_attempt(
                self._engine,
                job.delivery_id,
                status_code=None,
                latency_ms=int((time.monotonic() - started) * 1000),
                error=error,
                next_retry_at=retry_at,
                outcome=DeliveryStatus.PENDING,
            )
            count_delivery(DeliveryChannel.EMAIL, NotificationOutcome.FAILED_ATTEMPT)
            raise ApplicationError(
                f"email delivery {job.delivery_id} failed: {error}", type=ErrorType.EMAIL_DELIVERY_FAILED
            ) from None
        deliveries.record_attempt(
            self._engine,
            job.delivery_id,
            status_code=None,
            latency_ms=int((time.monotonic() - started) * 1000),
            error=None,
            next_retry_at=None,
            outcome=DeliveryStatus.DELIVERED,
        )
        count_delivery(DeliveryChannel.EMAIL, NotificationOutcome.DELIVERED, job.occurred_at)
        return DeliveryReport(DeliveryOutcome.DELIVERED)

    def _send(self, message: EmailMessage) -> None:
        s = self._settings
        smtp: smtplib.SMTP
        if s.smtp_ssl:
            smtp = smtplib.SMTP_SSL(
                s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds)
        with smtp:
            if s.smtp_starttls and not s.smtp_ssl:
                smtp.starttls(context=ssl.create_default_context())
            if s.smtp_username:
                smtp.login(s.smtp_username, s.smtp_password.get_secret_value())
            smtp.send_message(message)
