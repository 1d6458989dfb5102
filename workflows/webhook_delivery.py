"""One workflow per webhook endpoint: it delivers the endpoint's pending deliveries, a post's events one after the
other in the order of their sequence numbers, different posts' side by side.

The deliveries are rows (chronogram.notifications.deliveries); the workflow's input is the endpoint's id only, and
a ``wake`` signal says "look again". The first attempts of every delivery ready at one moment (at most one per
post) go out together in one activity (``deliver_batch``): a burst of events costs a few activities, not one each.
A delivery whose first attempt failed then goes on alone, one activity retried by Temporal on the endpoint's
schedule (exponential, capped, for about three days, counted from the first attempt); so does every delivery of a
batch whose activity itself failed (a worker killed mid-batch): nothing is lost, the next attempt sends the same
event with the same ``webhook-id``. When the retries are spent, the endpoint is disabled and its owner told. Idle,
the workflow waits a little for more, then ends; the dispatcher starts it again when needed. Long runs continue as
new, so that a history stays small.

Histories recorded before the batches (no ``delivery-batches`` marker) replay the one-activity-per-delivery path.
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
        DeliveryBatch,
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

# Deliveries read per look (before the batches: BATCH), and delivered before the run continues as new (a
# delivery is a few events).
BATCH = 50
DUE_LIMIT = 500
DELIVERIES_PER_RUN = 500
# First attempts per deliver_batch activity; a larger set goes as several, side by side.
BATCH_SIZE = 100
_BATCHES_PATCH = "delivery-batches"
# How long an idle endpoint's workflow waits for a wake-up before it ends: a burst arrives as several.
IDLE_LINGER = timedelta(seconds=60)
_DATABASE = RetryPolicy(maximum_interval=timedelta(seconds=30))


def delivery_retry(schedule: RetrySchedule) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(seconds=schedule.initial_seconds),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=schedule.max_interval_seconds),
    )


def after_first_attempt(schedule: RetrySchedule) -> RetrySchedule:
    """The schedule of the attempts after a failed first one, started one initial interval later: the same
    instants as the whole schedule's second attempt onwards (waits doubling from twice the initial one, capped),
    and the same end of the window."""
    return RetrySchedule(
        initial_seconds=min(schedule.initial_seconds * 2, schedule.max_interval_seconds),
        max_interval_seconds=schedule.max_interval_seconds,
        window_seconds=max(
            schedule.window_seconds - schedule.initial_seconds, schedule.request_timeout_seconds
        ),
        request_timeout_seconds=schedule.request_timeout_seconds,
    )


@workflow.defn(name=WEBHOOK_ENDPOINT_WORKFLOW)
class WebhookEndpointWorkflow:
    def __init__(self) -> None:
        self._woken = False
        self._changed = False  # a delivery lane finished
        self._batched = False  # the delivery-batches patch: first attempts go in batches
        # First attempts waiting for the next batch, each with what its lane awaits.
        self._queued: list[tuple[int, asyncio.Future[DeliveryOutcome | None]]] = []
        self._batching: asyncio.Task[None] | None = None

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
        self._batched = workflow.patched(_BATCHES_PATCH)
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
                DueDeliveriesInput(
                    endpoint_id=request.endpoint_id, limit=DUE_LIMIT if self._batched else BATCH
                ),
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
        if self._batched:
            first = await self._first_attempt(request, delivery_id)
            if first is DeliveryOutcome.RETRY:
                # Recorded with its next retry one initial interval from now: the rest of the schedule from there.
                await workflow.sleep(timedelta(seconds=retry.initial_seconds), summary="retry later")
                retry = after_first_attempt(retry)
            elif first is not None:
                return first
            # None: the batch itself failed; the delivery starts its schedule over, alone.
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

    async def _first_attempt(self, request: WebhookEndpointInput, delivery_id: int) -> DeliveryOutcome | None:
        """The delivery's first attempt, in the next batch; None if the batch's activity failed."""
        outcome: asyncio.Future[DeliveryOutcome | None] = asyncio.get_running_loop().create_future()
        self._queued.append((delivery_id, outcome))
        if self._batching is None or self._batching.done():
            self._batching = asyncio.create_task(self._send_queued(request))
        return await outcome

    async def _send_queued(self, request: WebhookEndpointInput) -> None:
        # Conditions are checked once every ready coroutine has run: by then, every lane that could go on in this
        # workflow task has queued its delivery, and they all go in one batch.
        await workflow.wait_condition(lambda: True)
        queued, self._queued = self._queued, []
        self._batching = None
        await asyncio.gather(
            *(
                self._send_batch(request, queued[start : start + BATCH_SIZE])
                for start in range(0, len(queued), BATCH_SIZE)
            )
        )

    async def _send_batch(
        self, request: WebhookEndpointInput, batch: list[tuple[int, asyncio.Future[DeliveryOutcome | None]]]
    ) -> None:
        retry = request.retry
        outcomes: list[DeliveryOutcome | None]
        try:
            report = await workflow.execute_activity_method(
                WebhookDeliveryInterface.deliver_batch,
                DeliveryBatch(
                    endpoint_id=request.endpoint_id,
                    delivery_ids=[delivery_id for delivery_id, _ in batch],
                    retry=retry,
                ),
                # The requests go side by side: one request's timeout, and time to read and record them.
                start_to_close_timeout=timedelta(seconds=retry.request_timeout_seconds + 20),
                # Once: a failed batch (a worker lost, the database) becomes deliveries retried one by one.
                retry_policy=RetryPolicy(maximum_attempts=1),
                summary=f"deliver {len(batch)}",
            )
            outcomes = list(report.outcomes)
        except ActivityError:
            outcomes = [None] * len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            future.set_result(outcome)
