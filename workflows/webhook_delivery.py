"""One workflow per webhook endpoint: it delivers the endpoint's pending deliveries, a post's events one after the
other in the order of their sequence numbers, different posts' side by side.

The deliveries are rows (chronogram.notifications.deliveries); the workflow's input is the endpoint's id only, and
a ``wake`` signal says "look again". One activity (``deliver_due``) reads what is due and sends the first attempts
of all of it side by side, at most one delivery per post (the oldest pending), leaving out the posts whose earlier
delivery is being retried: a burst of events costs one activity per round, not one, or two, each. A delivery
whose first attempt failed then goes on alone, one activity retried by Temporal on the endpoint's schedule
(exponential, capped, for about three days, counted from the first attempt), holding up its post's later events
only. A ``deliver_due`` activity that fails (a worker killed in it) is retried as a whole, and reads again what is
still pending: nothing is lost, an event sent again carries the same ``webhook-id``. When the retries are spent,
the endpoint is disabled and its owner told. Idle, the workflow waits a little for more, then ends; the
dispatcher starts it again when needed. Long runs continue as new, so that a history stays small.

Since the ``delivery-pump`` marker, one activity at a time, a pump (``pump_deliveries``), delivers the events as
they come (``_run_pumps``): it looks at what is due every few hundredths of a second, heartbeating, sends the
first attempts of what it finds side by side (each post's oldest pending delivery, none of a post whose earlier
one is out or being retried), and ends when nothing came for a few seconds, at its limits, or to hand over the
deliveries whose first attempt failed: the workflow retries each alone while the next pump goes on. An event no
longer waits for a wake-up signal, a workflow task and an activity's start (each a trip through Temporal, slow on
a starved machine): its latency is the dispatcher's and the pump's look. What is out is derived from the rows (a
delivery with an attempt behind it is being retried), so the claims need no workflow state: a pump lost with its
worker is noticed by its heartbeat timeout and run again, and sends again what is still pending (the same
``webhook-id``).

Histories recorded before (no ``delivery-pump`` marker) replay the path of their time. Rounds overlapped
(``_run_rounds``, since the ``delivery-rounds`` marker): a round was a read of what may go out
(``due_heads``, a local activity, so in the workflow task that decides it) and one activity sending those first
attempts side by side (``send_first_attempts``). The workflow kept the ordering keys of every round still out
and of every retried delivery busy, so that a new round, started at the next wake-up while others are out, never
took a post whose earlier event is still being sent. Before the rounds (no ``delivery-rounds`` marker): one
``deliver_due`` per round, one round after the other (``_run_batches``); before the batches (no
``delivery-batches`` marker either), a read of the due deliveries, then lanes of one activity per delivery
(``_run_lanes``).
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
        DeliverDueInput,
        DeliveryOutcome,
        DeliveryRef,
        DueDeliveriesInput,
        DueHeads,
        DueHeadsInput,
        EndpointStop,
        FirstAttemptsInput,
        FirstAttemptsReport,
        GiveUpInput,
        PumpInput,
        PumpReport,
        RetrySchedule,
        WakeSignal,
        WebhookDeliveryInterface,
        WebhookEndpointInput,
        WebhookEndpointResult,
    )

# Deliveries read per look by the lanes of before the batches, and delivered before the run continues as new (a
# delivery is a few events).
BATCH = 50
DELIVERIES_PER_RUN = 500
# First attempts per deliver_due activity (its requests go side by side).
BATCH_SIZE = 200
_BATCHES_PATCH = "delivery-batches"
_ROUNDS_PATCH = "delivery-rounds"
_PUMP_PATCH = "delivery-pump"
# A pump's run: how long it waits for more once nothing comes, at most how long it runs, and how long it may go
# without a heartbeat before it is taken for lost (and run again).
PUMP_LINGER = timedelta(seconds=5)
PUMP_RUN = timedelta(minutes=5)
PUMP_HEARTBEAT = timedelta(seconds=10)
# Rounds out at once: each is one activity holding up to BATCH_SIZE requests.
MAX_ROUNDS = 4
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
        self._changed = False  # a delivery lane, round or retry finished
        # Of the rounds' path: what was delivered, and the ordering keys held by a round or a retry.
        self._delivered = 0
        self._disabled = False
        self._busy: dict[int, int] = {}
        self._retrying: dict[int, asyncio.Task[tuple[int, bool]]] = {}

    @workflow.signal(name=WEBHOOK_WAKE_SIGNAL)
    def wake(self, signal: WakeSignal) -> None:
        self._woken = True

    @workflow.run
    async def run(self, request: WebhookEndpointInput) -> WebhookEndpointResult:
        if workflow.patched(_PUMP_PATCH):
            return await self._run_pumps(request)
        if workflow.patched(_ROUNDS_PATCH):
            return await self._run_rounds(request)
        if workflow.patched(_BATCHES_PATCH):
            return await self._run_batches(request)
        return await self._run_lanes(request)

    async def _run_pumps(self, request: WebhookEndpointInput) -> WebhookEndpointResult:
        """One pump at a time (``pump_deliveries``): it sends the events as they come, and hands over the ones
        whose first attempt failed, each retried alone (``_retry``) while the next pump goes on."""
        lingered = False
        retrying_ids: dict[int, int] = {}  # ordering key -> the delivery retried
        # Handed over while its key's earlier delivery is still retried (only pumps that overlapped, one lost but
        # still running, can do that): left to the next pump once that retry ends, never reported again before.
        parked: dict[int, int] = {}  # delivery -> its ordering key
        while True:
            self._woken = self._changed = False
            for key, task in list(self._retrying.items()):
                if task.done():
                    del self._retrying[key]
                    retrying_ids.pop(key, None)
                    parked = {d: k for d, k in parked.items() if k != key}
                    count, stopped = task.result()
                    self._delivered += count
                    self._disabled = self._disabled or stopped
            draining = (
                self._disabled
                or self._delivered >= DELIVERIES_PER_RUN
                or workflow.info().is_continue_as_new_suggested()
            )
            if draining:
                if self._retrying:
                    await workflow.wait_condition(lambda: self._changed)
                    continue
                if self._disabled:
                    return WebhookEndpointResult(request.endpoint_id, self._delivered, EndpointStop.DISABLED)
                workflow.continue_as_new(request)
            report: PumpReport = await workflow.execute_activity_method(
                WebhookDeliveryInterface.pump_deliveries,
                PumpInput(
                    endpoint_id=request.endpoint_id,
                    retry=request.retry,
                    retrying_ids=sorted([*retrying_ids.values(), *parked]),
                    linger_seconds=PUMP_LINGER.total_seconds(),
                    max_seconds=PUMP_RUN.total_seconds(),
                    max_deliveries=DELIVERIES_PER_RUN - self._delivered,
                ),
                # Its run, and its last requests (one request's timeout) and their record.
                start_to_close_timeout=PUMP_RUN
                + PUMP_LINGER
                + timedelta(seconds=request.retry.request_timeout_seconds + 30),
                # A lost worker is noticed by the heartbeats; the pump is run again and sends what is pending.
                heartbeat_timeout=PUMP_HEARTBEAT,
                retry_policy=_DATABASE,
                summary="deliver as they come",
            )
            self._delivered += report.delivered
            self._disabled = self._disabled or report.gone
            for delivery_id, key in zip(report.retry_ids, report.retry_keys, strict=True):
                if key in self._retrying:
                    parked[delivery_id] = key
                else:
                    retrying_ids[key] = delivery_id
                    self._retrying[key] = asyncio.create_task(self._retry(request, delivery_id))
            if not report.idle:
                lingered = False
                continue  # it handed over retries, or reached its limits: the next one goes on at once
            if report.delivered:
                lingered = False
            if self._retrying:
                await workflow.wait_condition(lambda: self._woken or self._changed)
                continue
            # A wake that came while the pump was out is remembered: the next one is at once.
            if lingered and not self._woken:
                return WebhookEndpointResult(request.endpoint_id, self._delivered, EndpointStop.IDLE)
            if not self._woken:
                try:
                    await workflow.wait_condition(lambda: self._woken, timeout=IDLE_LINGER)
                except TimeoutError:
                    lingered = True  # one last look, then end

    async def _run_rounds(self, request: WebhookEndpointInput) -> WebhookEndpointResult:
        """Rounds side by side, up to MAX_ROUNDS: each takes what may go out now (no key busy in another round or
        retried) and sends it; a post whose first attempt failed is retried alone (``_retry``)."""
        rounds: set[asyncio.Task[None]] = set()
        lingered = False
        more = True  # look at once: the run was started, or woken, for something
        while True:
            self._woken = self._changed = False
            for key, task in list(self._retrying.items()):
                if task.done():
                    del self._retrying[key]
                    self._busy.pop(key, None)
                    count, stopped = task.result()
                    self._delivered += count
                    self._disabled = self._disabled or stopped
            rounds = {task for task in rounds if not task.done()}
            draining = (
                self._disabled
                or self._delivered >= DELIVERIES_PER_RUN
                or workflow.info().is_continue_as_new_suggested()
            )
            if draining:
                if self._retrying or rounds:
                    await workflow.wait_condition(lambda: self._changed)
                    continue
                if self._disabled:
                    return WebhookEndpointResult(request.endpoint_id, self._delivered, EndpointStop.DISABLED)
                workflow.continue_as_new(request)
            if more and len(rounds) < MAX_ROUNDS:
                due = await workflow.execute_local_activity_method(
                    WebhookDeliveryInterface.due_heads,
                    DueHeadsInput(
                        endpoint_id=request.endpoint_id, busy_keys=sorted(self._busy), limit=BATCH_SIZE
                    ),
                    # Well within the workflow task's 10 s: a read held up is tried again, not the task.
                    start_to_close_timeout=timedelta(seconds=5),
                    retry_policy=_DATABASE,
                    summary="what may go out",
                )
                more = due.more
                if due.delivery_ids:
                    lingered = False
                    for key in due.ordering_keys:
                        self._busy[key] = 1
                    rounds.add(asyncio.create_task(self._round(request, due)))
                if more and len(rounds) < MAX_ROUNDS:
                    continue  # a post's next event, or more than one round
            if rounds or self._retrying:
                await workflow.wait_condition(lambda: self._woken or self._changed)
                # Woken: new events. A round or a retry ended: its posts' next events may go now.
                more = True
                continue
            # A wake that came while the last look was out is remembered: the next look is at once.
            if lingered and not self._woken:
                return WebhookEndpointResult(request.endpoint_id, self._delivered, EndpointStop.IDLE)
            if not self._woken:
                try:
                    await workflow.wait_condition(lambda: self._woken, timeout=IDLE_LINGER)
                except TimeoutError:
                    lingered = True  # one last look, then end
            more = True

    async def _round(self, request: WebhookEndpointInput, due: DueHeads) -> None:
        """Send the first attempts of ``due`` (its keys are busy meanwhile); a failed one goes on alone."""
        try:
            report: FirstAttemptsReport = await workflow.execute_activity_method(
                WebhookDeliveryInterface.send_first_attempts,
                FirstAttemptsInput(
                    endpoint_id=request.endpoint_id, delivery_ids=due.delivery_ids, retry=request.retry
                ),
                # The requests go side by side: one request's timeout, and time to read and record them.
                start_to_close_timeout=timedelta(seconds=request.retry.request_timeout_seconds + 20),
                # Retried whole (a worker lost in it, the database): it sends what is still pending.
                retry_policy=_DATABASE,
                summary=f"deliver {len(due.delivery_ids)}",
            )
            for delivery_id, key, outcome in zip(
                due.delivery_ids, due.ordering_keys, report.outcomes, strict=True
            ):
                if outcome is DeliveryOutcome.DELIVERED:
                    self._delivered += 1
                elif outcome is DeliveryOutcome.GONE:
                    self._disabled = True
                if outcome is DeliveryOutcome.RETRY:
                    self._retrying[key] = asyncio.create_task(self._retry(request, delivery_id))
                else:
                    self._busy.pop(key, None)
        finally:
            self._changed = True

    async def _run_batches(self, request: WebhookEndpointInput) -> WebhookEndpointResult:
        """Rounds of ``deliver_due``; a post whose first attempt failed is retried alone (``_retry``), and its
        later events wait for it."""
        delivered = 0
        disabled = False
        lingered = False
        retrying: dict[int, asyncio.Task[tuple[int, bool]]] = {}  # by ordering key
        while True:
            self._woken = self._changed = False
            for key, task in list(retrying.items()):
                if task.done():
                    del retrying[key]
                    count, stopped = task.result()
                    delivered += count
                    disabled = disabled or stopped
            draining = (
                disabled or delivered >= DELIVERIES_PER_RUN or workflow.info().is_continue_as_new_suggested()
            )
            if draining:
                if retrying:
                    await workflow.wait_condition(lambda: self._changed)
                    continue
                if disabled:
                    return WebhookEndpointResult(request.endpoint_id, delivered, EndpointStop.DISABLED)
                workflow.continue_as_new(request)
            report = await workflow.execute_activity_method(
                WebhookDeliveryInterface.deliver_due,
                DeliverDueInput(
                    endpoint_id=request.endpoint_id,
                    busy_keys=sorted(retrying),
                    limit=BATCH_SIZE,
                    retry=request.retry,
                ),
                # The requests go side by side: one request's timeout, and time to read and record them.
                start_to_close_timeout=timedelta(seconds=request.retry.request_timeout_seconds + 20),
                # Retried whole (a worker lost in it, the database): it reads again what is still pending.
                retry_policy=_DATABASE,
                summary="deliver what is due",
            )
            for delivery_id, key, outcome in zip(
                report.delivery_ids, report.ordering_keys, report.outcomes, strict=True
            ):
                if outcome is DeliveryOutcome.DELIVERED:
                    delivered += 1
                elif outcome is DeliveryOutcome.GONE:
                    disabled = True
                elif outcome is DeliveryOutcome.RETRY:
                    retrying[key] = asyncio.create_task(self._retry(request, delivery_id))
            if report.delivery_ids:
                lingered = False
            if report.more:
                continue  # a post's next event, or more than one batch
            if retrying:
                await workflow.wait_condition(lambda: self._woken or self._changed)
                continue
            # A wake that came while the batch was out is remembered: the next look is at once.
            if lingered and not self._woken:
                return WebhookEndpointResult(request.endpoint_id, delivered, EndpointStop.IDLE)
            try:
                await workflow.wait_condition(lambda: self._woken, timeout=IDLE_LINGER)
            except TimeoutError:
                lingered = True  # one last look, then end

    async def _retry(self, request: WebhookEndpointInput, delivery_id: int) -> tuple[int, bool]:
        """A delivery whose first attempt failed, alone on the rest of its schedule: (delivered or not, whether
        the endpoint is disabled now)."""
        try:
            # Its attempt was recorded with its next retry one initial interval from now.
            await workflow.sleep(timedelta(seconds=request.retry.initial_seconds), summary="retry later")
            later = WebhookEndpointInput(request.endpoint_id, after_first_attempt(request.retry))
            outcome = await self._deliver(later, delivery_id)
            if outcome is None or outcome is DeliveryOutcome.GONE:
                return 0, True
            return (1 if outcome is DeliveryOutcome.DELIVERED else 0), False
        finally:
            self._changed = True

    async def _run_lanes(self, request: WebhookEndpointInput) -> WebhookEndpointResult:
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
