"""The dispatcher: gets the outbox's events to the delivery workflows, without ever making a writer wait.

It runs beside the worker (``run_dispatcher``): every ``notifications_poll_interval_seconds`` it turns new outbox
rows into deliveries (chronogram.notifications.deliveries.fan_out) and wakes the workflow of each endpoint that
got one (signal-with-start, by the endpoint's workflow id; at most once a second per endpoint: the pump that a
wake-up runs looks for seconds, and sends what comes meanwhile) and starts one workflow per email. A crash between the
fan-out's commit and the wake-up loses nothing: the sweep, at start and every
``notifications_sweep_interval_seconds``, starts the workflow of every endpoint that still has pending deliveries
(a start that finds it running changes nothing, and writes nothing to its history) and of every pending email.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from chronogram.contracts import (
    EMAIL_NOTIFICATION_WORKFLOW,
    NOTIFICATIONS_TASK_QUEUE,
    WEBHOOK_ENDPOINT_WORKFLOW,
    WEBHOOK_WAKE_SIGNAL,
    EmailNotificationInput,
    RetrySchedule,
    WakeSignal,
    WebhookEndpointInput,
    email_workflow_id,
    webhook_endpoint_workflow_id,
)
from chronogram.notifications import deliveries
from chronogram.settings import Settings

log = logging.getLogger("chronogram.notifications")
# An endpoint's workflow is woken at most once in this long: well within the linger of its pump (5 s,
# workflows.webhook_delivery.PUMP_LINGER), which starts after the wake-up and sees what comes meanwhile.
WAKE_COALESCE_SECONDS = 1.0
T = TypeVar("T")


def retry_schedule(settings: Settings) -> RetrySchedule:
    return RetrySchedule(
        initial_seconds=settings.webhook_retry_initial_seconds,
        max_interval_seconds=settings.webhook_retry_max_interval_seconds,
        window_seconds=settings.webhook_retry_window_seconds,
        request_timeout_seconds=settings.webhook_request_timeout_seconds,
    )


async def wake_endpoint(
    client: Client, endpoint_id: int, retry: RetrySchedule, *, signal: bool = True
) -> None:
    """Have the endpoint's workflow look at its pending deliveries: signal it (starting it if it is not running);
    ``signal`` False: only start it if it is not running."""
    workflow_id = webhook_endpoint_workflow_id(endpoint_id)
    request = WebhookEndpointInput(endpoint_id=endpoint_id, retry=retry)
    if signal:
        await client.start_workflow(
            WEBHOOK_ENDPOINT_WORKFLOW,
            request,
            id=workflow_id,
            task_queue=NOTIFICATIONS_TASK_QUEUE,
            start_signal=WEBHOOK_WAKE_SIGNAL,
            start_signal_args=[WakeSignal()],
        )
    else:
        await client.start_workflow(
            WEBHOOK_ENDPOINT_WORKFLOW,
            request,
            id=workflow_id,
            task_queue=NOTIFICATIONS_TASK_QUEUE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )


async def start_email(client: Client, delivery_id: int, retry: RetrySchedule) -> None:
    await client.start_workflow(
        EMAIL_NOTIFICATION_WORKFLOW,
        EmailNotificationInput(delivery_id=delivery_id, retry=retry),
        id=email_workflow_id(delivery_id),
        task_queue=NOTIFICATIONS_TASK_QUEUE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


class Dispatcher:
    def __init__(
        self, settings: Settings, client: Client, engine: Engine, *, executor: Executor | None = None
    ) -> None:
        self._settings = settings
        self._client = client
        self._engine = engine
        self._executor = executor  # threads for the database (default: the event loop's)
        self._retry = retry_schedule(settings)
        self._email = bool(settings.smtp_host)
        self._woken: dict[int, float] = {}  # endpoint -> when its workflow was last woken (monotonic)

    async def _db(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def dispatch_once(self) -> int:
        """Fan out the outbox's new events and wake their workflows; the number of events dispatched."""
        made = await self._db(functools.partial(deliveries.fan_out, self._engine, email=self._email))
        now = time.monotonic()
        self._woken = {e: at for e, at in self._woken.items() if now - at < WAKE_COALESCE_SECONDS}
        for endpoint_id in sorted(made.endpoint_ids):
            # Woken less than WAKE_COALESCE ago: the pump that wake-up runs, or starts, still looks for a few
            # seconds (PUMP_LINGER), and sends these too; a wake-up per event would be a workflow task each.
            if endpoint_id in self._woken:
                continue
            await wake_endpoint(self._client, endpoint_id, self._retry)
            self._woken[endpoint_id] = now
        for delivery_id in made.email_delivery_ids:
            await start_email(self._client, delivery_id, self._retry)
        return made.events

    async def sweep(self) -> None:
        for endpoint_id in await self._db(functools.partial(deliveries.endpoints_with_pending, self._engine)):
            await wake_endpoint(self._client, endpoint_id, self._retry, signal=False)
        for delivery_id in await self._db(functools.partial(deliveries.pending_emails, self._engine)):
            await start_email(self._client, delivery_id, self._retry)

    async def run(self, stop: asyncio.Event) -> None:
        next_sweep = 0.0
        while not stop.is_set():
            dispatched = 0
            try:
                dispatched = await self.dispatch_once()
                if time.monotonic() >= next_sweep:
                    await self.sweep()
                    next_sweep = time.monotonic() + self._settings.notifications_sweep_interval_seconds
            except (SQLAlchemyError, RPCError, OSError) as error:
                # The rows stay: the next round, or the sweep, takes them again.
                log.warning("notification dispatch failed, will retry: %s", type(error).__name__)
            if dispatched:
                continue  # more may be waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    stop.wait(), timeout=self._settings.notifications_poll_interval_seconds
                )
