"""An in-memory stand-in for the world the workflow's activities touch, registered under the real activity names.

It models Instagram's container states (IN_PROGRESS -> FINISHED -> PUBLISHED, ERROR, EXPIRED) rather than replaying
canned answers, so "exactly one publish" is checked against state, not against a script's say-so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from chronogram.contracts import (
    CancellationRequester,
    ContainerCheck,
    ContainerRef,
    ContainerReport,
    ContainerStatusCode,
    CreateContainerInput,
    EventRecord,
    FinishInput,
    FirstCommentResult,
    MediaKind,
    MediaRef,
    PermalinkResult,
    PlannedMedia,
    PostMetricsInput,
    PostRef,
    PreparedMedia,
    PreparedMediaList,
    PublishInput,
    PublishOutcome,
    PublishPlan,
    PublishResult,
    QuotaReport,
    ReconcileInput,
    ReconcileResult,
    RunRef,
)
from chronogram.enums import PostStatus, PostType


def graph_error(kind: str, *, retryable: bool = False, **kwargs: Any) -> ApplicationError:
    return ApplicationError(f"simulated {kind}", type=kind, non_retryable=not retryable, **kwargs)


@dataclass
class PublishFault:
    error: ApplicationError
    committed: bool = False  # Meta published anyway ("published but the response is lost", 4/2207051)


@dataclass
class Script:
    post_type: PostType = PostType.IMAGE
    media_count: int = 1
    first_comment: bool = True
    polls_until_finished: int = 1
    prepare_error: ApplicationError | None = None
    publish_gate: asyncio.Event | None = None
    create_errors: list[ApplicationError] = field(default_factory=list)
    container_ends_as: list[str] = field(
        default_factory=list
    )  # e.g. ["ERROR"]: next created container turns so
    quota_reads: list[QuotaReport] = field(default_factory=list)  # successive answers; the last one repeats
    publish_faults: list[PublishFault] = field(default_factory=list)
    expire_after_failed_publish: bool = False
    # Every Graph call fails (HTTP 500, code 2) from ``start`` to ``end``, measured from FakeWorld.base.
    graph_outage: tuple[timedelta, timedelta] | None = None
    comment_errors: list[ApplicationError] = field(default_factory=list)
    max_lateness_seconds: int | None = None
    # The publish activity holds its call until PublishInput.not_before on the wall clock, heartbeating, as the
    # real one does (cancellable meanwhile); off: it publishes at once, whatever the time.
    holds_publish: bool = False
    # The plan's rank in a burst (PublishPlan.due_before): posts due in the same second created before this one.
    due_before: int = 0
    # The plan's burst pace (PublishPlan.wake_spacing_ms, wake_lead_max_seconds); None: as plans read before them.
    wake_spacing_ms: int | None = None
    wake_lead_max_seconds: int | None = None
    # The publish activity reads the new media's permalink after its call, as the real one does; off: its read
    # failed, and the workflow must fetch it (fetch_permalink).
    permalink_with_publish: bool = True


@dataclass
class Call:
    name: str
    at: datetime  # server time of the attempt: skipped time in the time-skipping environment
    arg: Any


class FakeWorld:
    def __init__(self, script: Script | None = None) -> None:
        self.script = script or Script()
        self.calls: list[Call] = []
        self.containers: dict[str, str] = {}
        self._polls: dict[str, int] = {}
        self.published: list[str] = []  # container ids media_publish really published
        self.comments: list[str] = []
        self.finished: list[FinishInput] = []
        self.events: list[EventRecord] = []
        self.failed_calls = 0
        self._ends_as = list(self.script.container_ends_as)
        # Server time when the post was scheduled: the origin of Script.graph_outage.
        self.base: datetime | None = None
        # The server's clock, for the calls of local activities: theirs is the worker's, which the time-skipping
        # server's is ahead of.
        self.clock: Callable[[], Awaitable[datetime]] | None = None

    def _log(self, name: str, arg: Any) -> None:
        self.calls.append(Call(name, activity.info().current_attempt_scheduled_time, arg))

    async def _log_step(self, name: str, arg: Any) -> None:
        """Logs a call of an activity that the workflow may run as a local one, at the server's time."""
        if activity.info().is_local and self.clock is not None:
            self.calls.append(Call(name, await self.clock(), arg))
        else:
            self._log(name, arg)

    def _graph(self, name: str, arg: Any) -> None:
        """Log a Graph call, and fail it during the scripted outage (as the sandbox's outage switch does)."""
        self._log(name, arg)
        outage, base = self.script.graph_outage, self.base
        if outage is None or base is None:
            return
        # When the attempt started: a retry's scheduled time is, on the time-skipping server, when its backoff
        # began, one interval before it really runs.
        now = activity.info().started_time
        if base + outage[0] <= now < base + outage[1]:
            self.failed_calls += 1
            raise graph_error("GraphTransientError", retryable=True)

    def called(self, name: str) -> list[Call]:
        return [call for call in self.calls if call.name == name]

    def activities(self) -> list[Callable[..., Any]]:
        world = self

        @activity.defn(name="load_plan")
        async def load_plan(request: PostRef) -> PublishPlan:
            world._log("load_plan", request)
            return PublishPlan(
                post_id=request.post_id,
                account_id=1,
                post_type=world.script.post_type,
                media=[
                    PlannedMedia(position=i, media_id=100 + i, kind=MediaKind.IMAGE)
                    for i in range(world.script.media_count)
                ],
                has_first_comment=world.script.first_comment,
                max_lateness_seconds=world.script.max_lateness_seconds,
                due_together=world.script.due_before + 1,
                due_before=world.script.due_before,
                wake_spacing_ms=world.script.wake_spacing_ms,
                wake_lead_max_seconds=world.script.wake_lead_max_seconds,
            )

        @activity.defn(name="begin_publishing")
        async def begin_publishing(event: EventRecord) -> None:
            await world._log_step("begin_publishing", event)
            if world.script.publish_gate is not None:
                await world.script.publish_gate.wait()

        @activity.defn(name="record_event")
        async def record_event(event: EventRecord) -> None:
            world._log("record_event", event)
            world.events.append(event)

        @activity.defn(name="finish")
        async def finish(request: FinishInput) -> None:
            await world._log_step("finish", request)
            world.finished.append(request)

        @activity.defn(name="prepare_media")
        async def prepare_media(request: PostRef) -> PreparedMediaList:
            world._log("prepare_media", request)
            if world.script.prepare_error is not None:
                raise world.script.prepare_error
            return PreparedMediaList(
                items=[
                    PreparedMedia(position=i, rendition_key=f"renditions/{i}.jpg", kind=MediaKind.IMAGE)
                    for i in range(world.script.media_count)
                ]
            )

        @activity.defn(name="get_publishing_quota")
        async def get_publishing_quota(request: PostRef) -> QuotaReport:
            world._graph("get_publishing_quota", request)
            reads = world.script.quota_reads
            if len(reads) > 1:
                return reads.pop(0)
            return reads[0] if reads else QuotaReport(usage=len(world.published), total=100)

        @activity.defn(name="create_container")
        async def create_container(request: CreateContainerInput) -> ContainerRef:
            world._graph("create_container", request)
            if world.script.create_errors:
                raise world.script.create_errors.pop(0)
            container_id = f"c{len(world.containers) + 1}"
            world.containers[container_id] = "IN_PROGRESS"
            world._polls[container_id] = 0
            return ContainerRef(container_id=container_id)

        @activity.defn(name="check_container_ready")
        async def check_container_ready(request: ContainerCheck) -> ContainerReport:
            world._graph("check_container_ready", request)
            cid = request.container_id
            if world.containers[cid] == "IN_PROGRESS":
                world._polls[cid] += 1
                if world._polls[cid] > world.script.polls_until_finished:
                    world.containers[cid] = world._ends_as.pop(0) if world._ends_as else "FINISHED"
            status = world.containers[cid]
            if status == "IN_PROGRESS":
                raise ApplicationError("not ready", type="ContainerNotReadyError")
            if status in ("ERROR", "EXPIRED"):
                raise graph_error("ContainerUnusableError")
            return ContainerReport(container_id=cid, status_code=ContainerStatusCode(status))

        @activity.defn(name="publish")
        async def publish(request: PublishInput) -> PublishResult:
            world._graph("publish", request)
            if world.script.holds_publish and request.not_before is not None:
                while (left := (request.not_before - datetime.now(UTC)).total_seconds()) > 0:
                    activity.heartbeat()
                    await asyncio.sleep(min(left, 0.25))
            cid = request.container_id
            if world.containers[cid] == "PUBLISHED":
                return PublishResult(outcome=PublishOutcome.ALREADY_PUBLISHED, media_id=None)
            if world.containers[cid] in ("ERROR", "EXPIRED"):
                raise graph_error("ContainerUnusableError")
            if world.script.publish_faults:
                fault = world.script.publish_faults.pop(0)
                if fault.committed:
                    world._publish(cid)
                elif world.script.expire_after_failed_publish:
                    world.containers[cid] = "EXPIRED"
                raise fault.error
            media_id = world._publish(cid)
            permalink = _permalink(media_id) if world.script.permalink_with_publish else None
            return PublishResult(outcome=PublishOutcome.PUBLISHED, media_id=media_id, permalink=permalink)

        @activity.defn(name="reconcile_publish")
        async def reconcile_publish(request: ReconcileInput) -> ReconcileResult:
            world._graph("reconcile_publish", request)
            status = world.containers[request.container_id]
            media_id = f"m-{request.container_id}" if status == "PUBLISHED" else None
            return ReconcileResult(status_code=ContainerStatusCode(status), media_id=media_id)

        @activity.defn(name="fetch_permalink")
        async def fetch_permalink(request: MediaRef) -> PermalinkResult:
            world._graph("fetch_permalink", request)
            return PermalinkResult(permalink=_permalink(request.media_id))

        @activity.defn(name="post_first_comment")
        async def post_first_comment(request: MediaRef) -> FirstCommentResult:
            world._graph("post_first_comment", request)
            if world.script.comment_errors:
                raise world.script.comment_errors.pop(0)
            world.comments.append(request.media_id)
            return FirstCommentResult(comment_id=f"comment-{request.media_id}", created=True)

        @activity.defn(name="start_post_metrics")
        async def start_post_metrics(request: PostMetricsInput) -> None:
            await world._log_step("start_post_metrics", request)

        @activity.defn(name="restart_post_metrics")
        async def restart_post_metrics(request: PostMetricsInput) -> None:
            await world._log_step("restart_post_metrics", request)

        @activity.defn(name="withdraw_post_metrics")
        async def withdraw_post_metrics(request: PostRef) -> None:
            await world._log_step("withdraw_post_metrics", request)

        @activity.defn(name="who_cancelled")
        async def who_cancelled(request: RunRef) -> CancellationRequester:
            return CancellationRequester(identity=f"operator of {request.workflow_id}", cause="")

        return [
            who_cancelled,
            load_plan,
            begin_publishing,
            record_event,
            finish,
            prepare_media,
            get_publishing_quota,
            create_container,
            check_container_ready,
            publish,
            reconcile_publish,
            fetch_permalink,
            post_first_comment,
            start_post_metrics,
            restart_post_metrics,
            withdraw_post_metrics,
        ]

    def _publish(self, container_id: str) -> str:
        self.containers[container_id] = "PUBLISHED"
        self.published.append(container_id)
        return f"m-{container_id}"

    @property
    def final_status(self) -> PostStatus | None:
        return self.finished[-1].status if self.finished else None


def _permalink(media_id: str) -> str:
    return f"https://www.instagram.com/p/{media_id}/"
