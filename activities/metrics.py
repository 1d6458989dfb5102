"""Reading a published post's insights at a checkpoint and storing them (chronogram.post_metrics).

The token is read and decrypted here by the post's account, per call: it never enters the workflow's input, result
or history. Nothing here touches the post itself: a reading that fails is stored with its error, and the post's
status never changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import SecretStr
from sqlalchemy import Engine, bindparam
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.instagram import as_application_error
from chronogram.contracts import (
    POST_METRICS_WORKFLOW,
    TASK_QUEUE,
    CaptureMetricsInput,
    CaptureMetricsResult,
    CaptureOutcome,
    PostMetricsInput,
    PostMetricsInterface,
    PostMetricsStarterInterface,
    PostRef,
    cap_error_text,
    post_metrics_workflow_id,
)
from chronogram.crypto import TokenCipher
from chronogram.enums import MetricsCheckpoint, PostStatus, PostType
from chronogram.instagram import GraphAPIError, GraphClient
from chronogram.models import InstagramAccount, Post
from chronogram.post_metrics import UNAVAILABLE, Reading, metrics_for, store_reading

log = logging.getLogger(__name__)

_TARGET_QUERY = (
    select(Post.type, Post.status, Post.ig_media_id, InstagramAccount.access_token_ciphertext)
    .outerjoin(InstagramAccount, InstagramAccount.id == Post.account_id)  # type: ignore[arg-type]
    .where(Post.id == bindparam("post_id"))
)


@dataclass(frozen=True)
class _Target:
    post_type: PostType
    media_id: str
    token: SecretStr


class PostMetricsActivities(PostMetricsInterface):
    def __init__(
        self,
        graph: GraphClient,
        engine: Engine,
        cipher: TokenCipher,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._graph = graph
        self._engine = engine
        self._cipher = cipher
        self._clock = clock

    @activity.defn
    async def capture_metrics(self, request: CaptureMetricsInput) -> CaptureMetricsResult:
        """Transient failures raise (the workflow retries them) until ``final_attempt``, where they are stored
        like a refusal: the reading is then over."""
        target = await asyncio.to_thread(self._load, request.post_id)
        if target is None:
            return CaptureMetricsResult(CaptureOutcome.GONE)
        try:
            values = await self._graph.get_media_insights(
                media_id=target.media_id,
                access_token=target.token.get_secret_value(),
                metrics=metrics_for(target.post_type),
            )
        except GraphAPIError as error:
            if error.retryable and activity.info().attempt < request.final_attempt:
                raise as_application_error(error) from None
            log.info("insights of post %d at +%s not read: %s", request.post_id, request.checkpoint, error)
            reading = Reading(
                request.checkpoint,
                self._clock(),
                {},
                error_code=error.kind.value,
                error_message=cap_error_text(f"{error.user_message} [{error}]"),
            )
            return await self._store(request.post_id, reading, CaptureOutcome.FAILED)
        if not values:
            reading = Reading(
                request.checkpoint,
                self._clock(),
                {},
                error_code=UNAVAILABLE,
                error_message="Instagram had no insights for this post at this time",
            )
            return await self._store(request.post_id, reading, CaptureOutcome.UNAVAILABLE)
        reading = Reading(request.checkpoint, self._clock(), values)
        return await self._store(request.post_id, reading, CaptureOutcome.CAPTURED)

    # --- helpers -----------------------------------------------------------------------------------------------

    def _load(self, post_id: int) -> _Target | None:
        """None when there is nothing to read: the post was deleted, or its account disconnected."""
        with Session(self._engine) as session:
            row = session.exec(_TARGET_QUERY, params={"post_id": post_id}).first()
        if row is None:
            return None
        post_type, status, media_id, ciphertext = row
        if status is not PostStatus.PUBLISHED or media_id is None or ciphertext is None:
            return None
        return _Target(PostType(post_type), media_id, self._cipher.decrypt(ciphertext))

    async def _store(self, post_id: int, reading: Reading, outcome: CaptureOutcome) -> CaptureMetricsResult:
        def write() -> bool:
            try:
                with self._engine.begin() as connection:
                    store_reading(connection, post_id, reading)
            except IntegrityError:
                return False  # the post was deleted meanwhile
            return True

        written = await asyncio.to_thread(write)
        return CaptureMetricsResult(outcome if written else CaptureOutcome.GONE)


# How long before the first reading a post's PostMetricsWorkflow takes its first task (see start_post_metrics).
_WAKE_BEFORE_FIRST_READING = timedelta(minutes=1)


def first_task_delay(published_at: datetime, now: datetime) -> timedelta:
    """How long the start of a post's PostMetricsWorkflow delays its first workflow task: until shortly before the
    first reading is due, nothing for it to do sooner. Zero when that is already past (a late start)."""
    first_reading = published_at + timedelta(
        seconds=min(checkpoint.seconds for checkpoint in MetricsCheckpoint)
    )
    return max(first_reading - _WAKE_BEFORE_FIRST_READING - now, timedelta(0))


class PostMetricsStarter(PostMetricsStarterInterface):
    """Starts a published post's PostMetricsWorkflow from its ScheduledPostWorkflow: a workflow of its own, not a
    child, so that the post's run ends at publish and nothing ties the two runs' lifetimes together.

    Its first workflow task is delayed until just before the first reading (Temporal's start delay): the workflow
    would only start a timer for it, and a burst of publishes would have a thousand new workflows to run (and
    their worker a thousand to cache) in the seconds in which the posts themselves are finishing. The timers the
    workflow sets count from ``published_at`` as before, so the readings are due at the same times.

    A held publish starts it ahead, for the post's planned time, as the post begins publishing (before the instant,
    out of a burst's busiest seconds: a workflow start is about a third of Temporal's work for a post after its
    instant, bench/README.md); the post replaces it (``restart_post_metrics``) only when it went out at another
    time. A post that ends without going out withdraws it (``withdraw_post_metrics``); one that could not leaves it
    to find nothing to read at its first reading, and end."""

    def __init__(self, temporal: Client, task_queue: str = TASK_QUEUE) -> None:
        self._temporal = temporal
        self._task_queue = task_queue

    @activity.defn
    async def start_post_metrics(self, request: PostMetricsInput) -> None:
        try:
            # Once per post: a retried activity, or a later run of the post, finds it started (or done).
            await self._start(request, WorkflowIDReusePolicy.REJECT_DUPLICATE, WorkflowIDConflictPolicy.FAIL)
        except WorkflowAlreadyStartedError:
            pass

    @activity.defn
    async def restart_post_metrics(self, request: PostMetricsInput) -> None:
        # The one started ahead is still asleep in its start delay (open: terminated and replaced), or it woke
        # before the post went out, found nothing to read and ended (closed: a new run follows it). Retried, it
        # replaces its own start by the same one: no reading is due for an hour.
        await self._start(
            request, WorkflowIDReusePolicy.ALLOW_DUPLICATE, WorkflowIDConflictPolicy.TERMINATE_EXISTING
        )

    @activity.defn
    async def withdraw_post_metrics(self, request: PostRef) -> None:
        handle = self._temporal.get_workflow_handle(post_metrics_workflow_id(request.post_id))
        try:
            await handle.terminate(
                reason=f"post {request.post_id} ended without going out: there are no insights to read"
            )
        except RPCError as error:
            # None open: never started, already ended, or withdrawn by an earlier attempt.
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise

    async def _start(
        self, request: PostMetricsInput, reuse: WorkflowIDReusePolicy, conflict: WorkflowIDConflictPolicy
    ) -> None:
        await self._temporal.start_workflow(
            POST_METRICS_WORKFLOW,
            request,
            id=post_metrics_workflow_id(request.post_id),
            task_queue=self._task_queue,
            id_reuse_policy=reuse,
            id_conflict_policy=conflict,
            static_summary="insights at +1 h, +24 h and +7 d",
            start_delay=first_task_delay(request.published_at, datetime.now(UTC)) or None,
        )
