"""WebhookEndpointWorkflow and EmailNotificationWorkflow on the time-skipping test server, with the activities
replaced by an in-memory endpoint: a post's deliveries go out one at a time in order, first attempts of different
posts together in batches (a pump's), a failing one is retried on the schedule and holds the ones behind it, a pump
lost after recording a failed attempt hands it over when run again, a failed batch is run again, retries spent for the whole window give up and disable the endpoint, 410
stops, and a long run continues as new."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest_asyncio
from temporalio import activity
from temporalio.client import WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

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
    EmailNotificationInput,
    EmailNotificationResult,
    EndpointStop,
    ErrorType,
    FirstAttemptsInput,
    FirstAttemptsReport,
    GiveUpInput,
    PumpInput,
    PumpReport,
    RetrySchedule,
    WakeSignal,
    WebhookEndpointInput,
    WebhookEndpointResult,
)
from chronogram.temporal import DATA_CONVERTER
from workflows import EmailNotificationWorkflow, WebhookEndpointWorkflow
from workflows.webhook_delivery import _BATCHES_PATCH, _PUMP_PATCH, _ROUNDS_PATCH

# Three days of retries, as in production: the time-skipping server makes them seconds.
SCHEDULE = RetrySchedule(
    initial_seconds=30,
    max_interval_seconds=6 * 3600,
    window_seconds=3 * 24 * 3600,
    request_timeout_seconds=10,
)


@dataclass
class FakeEndpoint:
    pending: list[int] = field(default_factory=list)
    # delivery id -> its post (the ordering key); a delivery not listed waits for nothing
    posts: dict[int, int] = field(default_factory=dict)
    # delivery id -> how many attempts fail before one succeeds (-1: never)
    failures: dict[int, int] = field(default_factory=dict)
    gone: set[int] = field(default_factory=set)
    attempts: list[int] = field(default_factory=list)
    delivered: list[int] = field(default_factory=list)
    given_up: list[GiveUpInput] = field(default_factory=list)
    batches: list[list[int]] = field(default_factory=list)
    # deliver_due activities that fail (a worker lost in one) before one succeeds
    failing_batches: int = 0

    @activity.defn(name="due_deliveries")
    async def due_deliveries(self, request: DueDeliveriesInput) -> DueDeliveries:
        due = self.pending[: request.limit]
        return DueDeliveries(delivery_ids=due, ordering_keys=[self.posts.get(d, -d) for d in due])

    @activity.defn(name="deliver_webhook")
    async def deliver_webhook(self, request: DeliveryRef) -> DeliveryReport:
        self.attempts.append(request.delivery_id)
        if request.delivery_id in self.gone:
            self.pending.remove(request.delivery_id)
            return DeliveryReport(DeliveryOutcome.GONE)
        left = self.failures.get(request.delivery_id, 0)
        if left != 0:
            self.failures[request.delivery_id] = left - 1
            self.tried.add(request.delivery_id)
            raise ApplicationError("answered HTTP 503", type=ErrorType.WEBHOOK_DELIVERY_FAILED)
        self.pending.remove(request.delivery_id)
        self.delivered.append(request.delivery_id)
        return DeliveryReport(DeliveryOutcome.DELIVERED)

    @activity.defn(name="deliver_due")
    async def deliver_due(self, request: DeliverDueInput) -> DeliverDueReport:
        if self.failing_batches:
            self.failing_batches -= 1
            raise RuntimeError("the worker was lost")
        heads: dict[int, int] = {}  # key -> its oldest pending delivery
        more = False
        for delivery_id in self.pending:
            key = self.posts.get(delivery_id, -delivery_id)
            if key in request.busy_keys:
                continue
            if key in heads or len(heads) >= request.limit:
                more = True
            else:
                heads[key] = delivery_id
        self.batches.append(list(heads.values()))
        outcomes = []
        for delivery_id in heads.values():
            try:
                outcomes.append((await self.deliver_webhook(DeliveryRef(delivery_id, request.retry))).outcome)
            except ApplicationError:
                outcomes.append(DeliveryOutcome.RETRY)
        return DeliverDueReport(list(heads.values()), list(heads), outcomes, more)

    # Delivery ids being sent by a round right now: a post never has two at once.
    out: set[int] = field(default_factory=set)
    overlapped: int = 0  # rounds that started while another was out
    # Set: the first round stays out until it is set.
    hold_first: asyncio.Event | None = None

    @activity.defn(name="due_heads")
    async def due_heads(self, request: DueHeadsInput) -> DueHeads:
        heads: dict[int, int] = {}
        more = False
        for delivery_id in self.pending:
            key = self.posts.get(delivery_id, -delivery_id)
            if key in request.busy_keys:
                continue
            if key in heads or len(heads) >= request.limit:
                more = True
            else:
                heads[key] = delivery_id
        return DueHeads(list(heads.values()), list(heads), more)

    @activity.defn(name="send_first_attempts")
    async def send_first_attempts(self, request: FirstAttemptsInput) -> FirstAttemptsReport:
        if self.failing_batches:
            self.failing_batches -= 1
            raise RuntimeError("the worker was lost")
        keys = {self.posts.get(d, -d) for d in self.out}
        assert not keys & {self.posts.get(d, -d) for d in request.delivery_ids}, "one post's events at once"
        self.overlapped += bool(self.out)
        self.out.update(request.delivery_ids)
        self.batches.append(list(request.delivery_ids))
        if self.hold_first is not None and len(self.batches) == 1:
            await self.hold_first.wait()
        outcomes = []
        for delivery_id in request.delivery_ids:
            if delivery_id not in self.pending:
                outcomes.append(DeliveryOutcome.SKIPPED)
                continue
            try:
                outcomes.append((await self.deliver_webhook(DeliveryRef(delivery_id, request.retry))).outcome)
            except ApplicationError:
                outcomes.append(DeliveryOutcome.RETRY)
        self.out.difference_update(request.delivery_ids)
        return FirstAttemptsReport(outcomes)

    # Deliveries with a failed attempt behind them (the rows' attempts > 0): a pump leaves their posts alone.
    tried: set[int] = field(default_factory=set)
    pumps: list[PumpInput] = field(default_factory=list)
    # Pumps that record their first attempts and are lost before they report (a worker killed).
    lost_pumps: int = 0

    @activity.defn(name="pump_deliveries")
    async def pump_deliveries(self, request: PumpInput) -> PumpReport:
        """As the real pump, one batch after the other: each post's oldest pending delivery (none with an attempt
        behind it), until nothing is due, a first attempt fails (handed over), 410, or its limit."""
        self.pumps.append(request)
        if self.failing_batches:
            self.failing_batches -= 1
            raise RuntimeError("the worker was lost")
        delivered = 0
        retries: dict[int, int] = {}
        gone = False
        while not gone and not retries and delivered < request.max_deliveries:
            heads: dict[int, int] = {}
            seen: set[int] = set()
            for delivery_id in self.pending:
                key = self.posts.get(delivery_id, -delivery_id)
                if delivery_id in self.tried and delivery_id not in request.retrying_ids:
                    retries[delivery_id] = key  # an orphan: a lost pump recorded its attempt
                if key in seen:
                    continue
                seen.add(key)
                if delivery_id not in self.tried and len(heads) < 200:
                    heads[key] = delivery_id
            if retries or not heads:
                break
            self.batches.append(list(heads.values()))
            for key, delivery_id in heads.items():
                try:
                    outcome = (await self.deliver_webhook(DeliveryRef(delivery_id, request.retry))).outcome
                except ApplicationError:
                    retries[delivery_id] = key
                    continue
                if outcome is DeliveryOutcome.GONE:
                    gone = True
                else:
                    delivered += 1
            if self.lost_pumps and retries:
                self.lost_pumps -= 1
                raise RuntimeError("the worker was lost")
        stopped = gone or bool(retries) or delivered >= request.max_deliveries
        return PumpReport(delivered, list(retries), list(retries.values()), gone, idle=not stopped)

    @activity.defn(name="give_up_delivery")
    async def give_up_delivery(self, request: GiveUpInput) -> None:
        self.given_up.append(request)
        if request.delivery_id in self.pending:
            self.pending.remove(request.delivery_id)

    @activity.defn(name="send_email")
    async def send_email(self, request: DeliveryRef) -> DeliveryReport:
        self.attempts.append(request.delivery_id)
        raise ApplicationError("connection refused", type=ErrorType.EMAIL_DELIVERY_FAILED)


@dataclass
class Harness:
    env: WorkflowEnvironment
    endpoint: FakeEndpoint
    task_queue: str

    async def run(self, endpoint_id: int = 1) -> WebhookEndpointResult:
        return await self.env.client.execute_workflow(
            WebhookEndpointWorkflow.run,
            WebhookEndpointInput(endpoint_id=endpoint_id, retry=SCHEDULE),
            id=f"webhook-endpoint-{uuid.uuid4().hex}",
            task_queue=self.task_queue,
            start_signal="wake",
            start_signal_args=[WakeSignal()],
        )


@pytest_asyncio.fixture
async def harness(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[Harness]:
    endpoint = FakeEndpoint()
    task_queue = f"notifications-{uuid.uuid4().hex}"
    with ThreadPoolExecutor(max_workers=4) as executor:
        async with Worker(
            time_skipping_env.client,
            task_queue=task_queue,
            workflows=[WebhookEndpointWorkflow, EmailNotificationWorkflow],
            activities=[
                endpoint.due_deliveries,
                endpoint.deliver_webhook,
                endpoint.deliver_due,
                endpoint.due_heads,
                endpoint.send_first_attempts,
                endpoint.pump_deliveries,
                endpoint.give_up_delivery,
                endpoint.send_email,
            ],
            activity_executor=executor,
        ):
            yield Harness(time_skipping_env, endpoint, task_queue)


async def test_a_posts_events_go_in_order_and_a_failing_one_holds_only_its_posts_later_ones(
    harness: Harness,
) -> None:
    harness.endpoint.pending = [1, 2, 3, 4]
    harness.endpoint.posts = {1: 10, 2: 10, 3: 10, 4: 20}
    harness.endpoint.failures = {2: 4}
    result = await harness.run()
    assert result == WebhookEndpointResult(1, 4, EndpointStop.IDLE)
    delivered = harness.endpoint.delivered
    assert sorted(delivered) == [1, 2, 3, 4]
    assert delivered.index(1) < delivered.index(2) < delivered.index(3)  # post 10 in order
    assert delivered.index(4) < delivered.index(2)  # post 20 did not wait for post 10's retries
    assert harness.endpoint.attempts.count(2) == 5 and harness.endpoint.attempts.count(3) == 1


async def test_a_burst_goes_out_in_a_few_batches_a_posts_events_still_one_after_the_other(
    harness: Harness,
) -> None:
    # 250 posts with one event each, and one post with three.
    harness.endpoint.pending = list(range(1, 254))
    harness.endpoint.posts = {d: d for d in range(1, 251)} | {251: 1000, 252: 1000, 253: 1000}
    result = await harness.run()
    assert result == WebhookEndpointResult(1, 253, EndpointStop.IDLE)
    assert sorted(harness.endpoint.delivered) == list(range(1, 254))
    # 251 posts' first events in batches of at most 200, then the long lane's two later events one by one.
    # (The first two rounds go out side by side, in either order.)
    assert sorted(len(batch) for batch in harness.endpoint.batches if batch) == [1, 1, 51, 200]
    assert [batch for batch in harness.endpoint.batches if len(batch) == 1] == [[252], [253]]
    assert len(harness.endpoint.attempts) == 253  # no attempt outside the batches


async def test_a_pump_lost_after_recording_a_failed_attempt_hands_it_over_when_run_again(
    harness: Harness,
) -> None:
    # The pump records 1's failed first attempt (its post is held from then on) and is lost before it reports:
    # Temporal runs it again, and the rows tell it that nobody retries 1 (an orphan), which it hands over.
    harness.endpoint.pending = [1, 2, 3]
    harness.endpoint.posts = {1: 10, 2: 10, 3: 20}
    harness.endpoint.failures = {1: 2}
    harness.endpoint.lost_pumps = 1
    result = await harness.run()
    assert result.stop is EndpointStop.IDLE
    delivered = harness.endpoint.delivered
    assert sorted(delivered) == [1, 2, 3] and delivered.index(1) < delivered.index(2)
    assert harness.endpoint.pumps[1].retrying_ids == []  # the run again knew nothing of 1: the rows told it
    assert any(1 in pump.retrying_ids for pump in harness.endpoint.pumps[2:])  # then the workflow retried it


async def test_a_failed_batch_is_run_again_and_loses_nothing(harness: Harness) -> None:
    harness.endpoint.pending = [1, 2, 3]
    harness.endpoint.posts = {1: 10, 2: 10, 3: 20}
    harness.endpoint.failing_batches = 1
    result = await harness.run()
    assert result == WebhookEndpointResult(1, 3, EndpointStop.IDLE)
    assert harness.endpoint.delivered == [1, 3, 2] and harness.endpoint.batches[:2] == [[1, 3], [2]]


async def test_retries_spent_for_the_whole_window_give_up_and_disable(harness: Harness) -> None:
    harness.endpoint.pending = [7, 8, 9]
    harness.endpoint.posts = {7: 1, 8: 1, 9: 2}
    harness.endpoint.failures = {7: -1}
    result = await harness.run(endpoint_id=4)
    assert result.stop is EndpointStop.DISABLED
    assert harness.endpoint.given_up == [GiveUpInput(delivery_id=7, endpoint_id=4)]
    # 30 s doubling, capped at 6 h, over 3 days: about 20 attempts, not thousands.
    assert 15 <= harness.endpoint.attempts.count(7) <= 25
    assert harness.endpoint.delivered == [9] and 8 in harness.endpoint.pending


async def test_410_gone_stops_at_once(harness: Harness) -> None:
    harness.endpoint.pending = [1, 2]
    harness.endpoint.posts = {1: 3, 2: 3}
    harness.endpoint.gone = {1}
    result = await harness.run()
    assert result.stop is EndpointStop.DISABLED and harness.endpoint.attempts == [1]


async def test_a_long_run_continues_as_new(harness: Harness) -> None:
    harness.endpoint.pending = list(range(1, 1201))
    result = await harness.run()
    assert result.stop is EndpointStop.IDLE and sorted(harness.endpoint.delivered) == list(range(1, 1201))
    assert result.delivered < 1200  # the last run's count: earlier runs continued as new


async def test_an_email_that_keeps_failing_is_given_up(harness: Harness) -> None:
    result = await harness.env.client.execute_workflow(
        EmailNotificationWorkflow.run,
        EmailNotificationInput(delivery_id=5, retry=SCHEDULE),
        id=f"email-{uuid.uuid4().hex}",
        task_queue=harness.task_queue,
    )
    assert result == EmailNotificationResult(5, DeliveryOutcome.FAILED)
    assert harness.endpoint.given_up == [GiveUpInput(delivery_id=5)]


# A recorded history of the endpoint's workflow (lanes, a retry, a wake-up while delivering): it must replay with
# the current code, so that a change to the workflow's commands is caught before an endpoint's running workflow
# meets it. Re-record (CHRONOGRAM_RECORD_HISTORIES=1) only with a change meant to alter histories, behind
# workflow.patched(), keeping the old file in a before-<patch> folder: those replay forever too.
HISTORIES = Path(__file__).resolve().parents[1] / "replay" / "notification_histories"
HISTORY = HISTORIES / "webhook_endpoint_lanes.json"
BEFORE_PUMP = HISTORIES / "before-delivery-pump" / "webhook_endpoint_lanes.json"
BEFORE_ROUNDS = HISTORIES / "before-delivery-rounds" / "webhook_endpoint_lanes.json"
BEFORE_BATCHES = HISTORIES / "before-delivery-batches" / "webhook_endpoint_lanes.json"


async def test_the_recorded_endpoint_history_replays(harness: Harness) -> None:
    if os.environ.get("CHRONOGRAM_RECORD_HISTORIES") == "1":
        harness.endpoint.pending = [1, 2, 3, 4]
        harness.endpoint.posts = {1: 10, 2: 10, 3: 11}
        harness.endpoint.failures = {1: 2}
        handle = await harness.env.client.start_workflow(
            WebhookEndpointWorkflow.run,
            WebhookEndpointInput(endpoint_id=1, retry=SCHEDULE),
            id=f"webhook-endpoint-{uuid.uuid4().hex}",
            task_queue=harness.task_queue,
            start_signal="wake",
            start_signal_args=[WakeSignal()],
        )
        await handle.signal(WebhookEndpointWorkflow.wake, WakeSignal(reason="recorded"))
        await handle.result()
        HISTORY.parent.mkdir(parents=True, exist_ok=True)
        HISTORY.write_text(json.dumps((await handle.fetch_history()).to_json_dict(), indent=1) + "\n")
    replayer = Replayer(workflows=[WebhookEndpointWorkflow], data_converter=DATA_CONVERTER)
    for path in (HISTORY, BEFORE_PUMP, BEFORE_ROUNDS, BEFORE_BATCHES):
        history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
        await replayer.replay_workflow(history)


def _recorded(path: Path) -> tuple[set[str], list[str]]:
    """The patches a history's markers name, and the activities it scheduled, in order."""
    events = json.loads(path.read_text())["events"]
    patches = {
        json.loads(base64.b64decode(marker["details"]["patch-data"]["payloads"][0]["data"]))["id"]
        for event in events
        if event["eventType"] == "EVENT_TYPE_MARKER_RECORDED"
        and (marker := event["markerRecordedEventAttributes"])["markerName"] == "core_patch"
    }
    activities = [
        event["activityTaskScheduledEventAttributes"]["activityType"]["name"]
        for event in events
        if event["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
    ]
    return patches, activities


def test_each_side_of_the_patches_is_recorded() -> None:
    """The oldest history delivers one activity per delivery; the next one records the batches' marker and one
    deliver_due per round; the next the rounds' marker, and a send per round (its read is a local activity, a
    marker, not a scheduled activity); the current one the pump's marker, and pumps only (and the retries')."""
    before_patches, before_activities = _recorded(BEFORE_BATCHES)
    assert _BATCHES_PATCH not in before_patches and "deliver_due" not in before_activities
    batches_patches, batches_activities = _recorded(BEFORE_ROUNDS)
    assert _BATCHES_PATCH in batches_patches and _ROUNDS_PATCH not in batches_patches
    assert "deliver_due" in batches_activities and "due_deliveries" not in batches_activities
    rounds_patches, rounds_activities = _recorded(BEFORE_PUMP)
    assert _ROUNDS_PATCH in rounds_patches and "send_first_attempts" in rounds_activities
    assert _PUMP_PATCH not in rounds_patches
    assert "deliver_due" not in rounds_activities and "due_deliveries" not in rounds_activities
    patches, activities = _recorded(HISTORY)
    assert _PUMP_PATCH in patches and "pump_deliveries" in activities
    assert not {"send_first_attempts", "deliver_due", "due_deliveries"} & set(activities)
