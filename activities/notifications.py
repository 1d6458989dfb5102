"""Delivery activities: one webhook attempt (signed, 10 s timeout, recorded in the delivery log) and one email.

An attempt that fails raises a retryable ApplicationError; Temporal retries it on the schedule the workflow gives
(RetrySchedule). The attempt's row says when the next one is due. Nothing here logs or raises a secret: the
signing secrets are decrypted for the request's headers only.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import httpx
from sqlalchemy import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from chronogram.contracts import (
    DeliveryOutcome,
    DeliveryRef,
    DeliveryReport,
    DueDeliveries,
    DueDeliveriesInput,
    EmailInterface,
    ErrorType,
    GiveUpInput,
    RetrySchedule,
    WebhookDeliveryInterface,
    cap_error_text,
)
from chronogram.crypto import TokenCipher
from chronogram.enums import DeliveryStatus
from chronogram.notifications import deliveries
from chronogram.notifications.email import render_email
from chronogram.notifications.signing import signed_headers
from chronogram.notifications.url_policy import UrlPolicy, UrlRefused
from chronogram.settings import Settings

USER_AGENT = "Chronogram-Webhooks/1"
# A receiver's answer is not read beyond this: its body is never stored, only its status.
_GONE = 410


def next_retry_at(schedule: RetrySchedule, *, attempt: int, first_scheduled: datetime) -> datetime | None:
    """When Temporal will try again after failed attempt ``attempt`` (1-based), or None if the window ends first."""
    wait = min(schedule.initial_seconds * 2 ** (attempt - 1), schedule.max_interval_seconds)
    due = datetime.now(UTC) + timedelta(seconds=wait)
    if due > first_scheduled + timedelta(seconds=schedule.window_seconds):
        return None
    return due


class WebhookActivities(WebhookDeliveryInterface):
    """Async (httpx); the database calls run in threads."""

    def __init__(
        self, engine: Engine, http: httpx.AsyncClient, cipher: TokenCipher, policy: UrlPolicy
    ) -> None:
        self._engine = engine
        self._http = http
        self._cipher = cipher
        self._policy = policy

    @activity.defn
    async def due_deliveries(self, request: DueDeliveriesInput) -> DueDeliveries:
        due = await asyncio.to_thread(
            deliveries.due_deliveries, self._engine, request.endpoint_id, limit=request.limit
        )
        return DueDeliveries(delivery_ids=[d for d, _ in due], ordering_keys=[k for _, k in due])

    @activity.defn
    async def deliver_webhook(self, request: DeliveryRef) -> DeliveryReport:
        try:
            job = await asyncio.to_thread(
                deliveries.webhook_job, self._engine, request.delivery_id, self._cipher
            )
        except deliveries.DeliveryGone:
            return DeliveryReport(DeliveryOutcome.SKIPPED)
        status_code: int | None = None
        error: str | None = None
        started = time.monotonic()
        try:
            # Again at every attempt: the name may resolve elsewhere now than when the endpoint was made.
            await self._policy.check(job.url)
            headers = signed_headers(
                event_id=job.event_id, timestamp=datetime.now(UTC), body=job.body, secrets_in_use=job.secrets
            )
            response = await self._http.post(
                job.url,
                content=job.body.encode("utf-8"),
                headers={**headers, "content-type": "application/json", "user-agent": USER_AGENT},
                timeout=request.retry.request_timeout_seconds,
                follow_redirects=False,
            )
            status_code = response.status_code
        except UrlRefused as refused:
            error = str(refused)
        except httpx.HTTPError as failure:
            error = f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__
        latency_ms = int((time.monotonic() - started) * 1000)
        if status_code is not None and 200 <= status_code < 300:
            await self._record(job.delivery_id, status_code, latency_ms, None, None, DeliveryStatus.DELIVERED)
            return DeliveryReport(DeliveryOutcome.DELIVERED)
        if status_code == _GONE:
            await self._record(
                job.delivery_id, status_code, latency_ms, "410 Gone", None, DeliveryStatus.FAILED
            )
            await asyncio.to_thread(
                deliveries.disable_endpoint,
                self._engine,
                job.endpoint_id,
                reason="the endpoint answered 410 Gone",
            )
            return DeliveryReport(DeliveryOutcome.GONE)
        if error is None:
            error = f"answered HTTP {status_code}"
        info = activity.info()
        retry_at = next_retry_at(request.retry, attempt=info.attempt, first_scheduled=info.scheduled_time)
        await self._record(
            job.delivery_id, status_code, latency_ms, cap_error_text(error), retry_at, DeliveryStatus.PENDING
        )
        raise ApplicationError(
            f"webhook delivery {job.delivery_id} failed: {cap_error_text(error)}",
            type=ErrorType.WEBHOOK_DELIVERY_FAILED,
        )

    @activity.defn
    async def give_up_delivery(self, request: GiveUpInput) -> None:
        await asyncio.to_thread(deliveries.give_up, self._engine, request.delivery_id)
        if request.endpoint_id is not None:
            await asyncio.to_thread(
                deliveries.disable_endpoint,
                self._engine,
                request.endpoint_id,
                reason="deliveries kept failing for the whole retry window",
            )

    async def _record(
        self,
        delivery_id: int,
        status_code: int | None,
        latency_ms: int,
        error: str | None,
        retry_at: datetime | None,
        outcome: DeliveryStatus,
    ) -> None:
        await asyncio.to_thread(
            deliveries.record_attempt,
            self._engine,
            delivery_id,
            status_code=status_code,
            latency_ms=latency_ms,
            error=error,
            next_retry_at=retry_at,
            outcome=outcome,
        )


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
