"""One workflow per webhook endpoint: it delivers the endpoint's pending deliveries, a post's events one after the
other in the order of their sequence numbers, different posts' side by side.

The deliveries are rows (chronogram.notifications.deliveries); the workflow's input is the endpoint's id only, and
a ``wake`` signal says "look again". Each delivery is one activity, retried by Temporal on the endpoint's schedule
(exponential, capped, for about three days): a worker killed mid-delivery loses nothing, the next attempt sends
the same event with the same ``webhook-id``. When the retries are spent, the endpoint is disabled and its owner
told. Idle, the workflow waits a little for more, then ends; the dispatcher starts it again when needed. Long
runs continue as new, so that a history stays small.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from chronogram.contracts import (
        WEBHOOK_ENDPOINT_WORKFLOW,
        WEBHOOK_WAKE_SIGNAL,
        DeliveryOutcome,
        DeliveryRef,
        DueDeliveriesInput,
        EndpointStop,
        GiveUpInput,
        RetrySchedule,
        WakeSignal,
        WebhookDeliveryInterface,
        WebhookEndpointInput,
        WebhookEndpointResult,
    )

# Deliveries read per batch, and delivered before the run continues as new (a delivery is a few events).
BATCH = 50
DELIVERIES_PER_RUN = 500
# How long an idle endpoint's workflow waits for a wake-up before it ends: a burst arrives as several.
IDLE_LINGER = timedelta(seconds=60)
_DATABASE = RetryPolicy(maximum_interval=timedelta(seconds=30))


def delivery_retry(schedule: RetrySchedule) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(seconds=schedule.initial_seconds),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=schedule.max_interval_seconds),
    )


@workflow.defn(name=WEBHOOK_ENDPOINT_WORKFLOW)
class WebhookEndpointWorkflow:
    def __init__(self) -> None:
        self._woken = False
        self._changed = False  # a delivery lane finished

    @workflow.signal(name=WEBHOOK_WAKE_SIGNAL)
    def wake(self, signal: WakeSignal) -> None:
        self._woken = True

    @workflow.run
    async def run(self, request: WebhookEndpointInput) -> WebhookEndpointResult:
        """One lane per ordering key (a post): a lane delivers its deliveries one after the other, and lanes run
        side by side, so that a post whose delivery keeps failing holds up its own later events only."""
        delivered = 0
        disabled = False
        lingered = False
        lanes: dict[int, asyncio.Task[tuple[int, bool]]] = {}
        while True:
            self._woken = self._changed = False
            for key, lane in list(lanes.items()):
                if lane.done():
                    del lanes[key]
                    count, stopped = lane.result()
                    delivered += count
                    disabled = disabled or stopped
            draining = (
                disabled or delivered >= DELIVERIES_PER_RUN or workflow.info().is_continue_as_new_suggested()
            )
            if draining:
                if lanes:
                    await workflow.wait_condition(lambda: self._changed)
                    continue
                if disabled:
                    return WebhookEndpointResult(request.endpoint_id, delivered, EndpointStop.DISABLED)
                workflow.continue_as_new(request)
            due = await workflow.execute_activity_method(
                WebhookDeliveryInterface.due_deliveries,
                DueDeliveriesInput(endpoint_id=request.endpoint_id, limit=BATCH),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=_DATABASE,
                summary="read pending deliveries",
            )
            waiting: dict[int, list[int]] = {}
            for delivery_id, key in zip(due.delivery_ids, due.ordering_keys, strict=True):
                if key not in lanes:
                    waiting.setdefault(key, []).append(delivery_id)
            for key, ids in waiting.items():
                lanes[key] = asyncio.create_task(self._lane(request, ids))
            if lanes:
                lingered = False
                await workflow.wait_condition(lambda: self._woken or self._changed)
                continue
            if lingered and not self._woken:
                return WebhookEndpointResult(request.endpoint_id, delivered, EndpointStop.IDLE)
            try:
                await workflow.wait_condition(lambda: self._woken, timeout=IDLE_LINGER)
            except TimeoutError:
                lingered = True  # one last look, then end

    async def _lane(self, request: WebhookEndpointInput, delivery_ids: list[int]) -> tuple[int, bool]:
        """Deliver in order; (how many were delivered, whether the endpoint is disabled now)."""
        delivered = 0
        try:
            for delivery_id in delivery_ids:
                outcome = await self._deliver(request, delivery_id)
                if outcome is None or outcome is DeliveryOutcome.GONE:
                    return delivered, True
                if outcome is DeliveryOutcome.SKIPPED:
                    break  # disabled or deleted meanwhile: the next read says which
                delivered += 1
            return delivered, False
        finally:
            self._changed = True

    async def _deliver(self, request: WebhookEndpointInput, delivery_id: int) -> DeliveryOutcome | None:
        """The delivery's outcome; None when its retries are spent (the endpoint is then disabled)."""
        retry = request.retry
        try:
            report = await workflow.execute_activity_method(
                WebhookDeliveryInterface.deliver_webhook,
                DeliveryRef(delivery_id=delivery_id, retry=retry),
                # The request's own timeout, and time to record the attempt.
                start_to_close_timeout=timedelta(seconds=retry.request_timeout_seconds + 10),
                schedule_to_close_timeout=timedelta(seconds=retry.window_seconds),
                retry_policy=delivery_retry(retry),
                summary=f"deliver {delivery_id}",
            )
        except ActivityError:
            await workflow.execute_activity_method(
                WebhookDeliveryInterface.give_up_delivery,
                GiveUpInput(delivery_id=delivery_id, endpoint_id=request.endpoint_id),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=_DATABASE,
                summary=f"give up {delivery_id}",
            )
            return None
        return report.outcome
