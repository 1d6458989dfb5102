"""Everything the API asks of Temporal about a post: start its workflow (and record the start), signal it, query
it, wait for its run to close. (The workflow code itself is the top-level ``workflows`` package.)

A post is written to the database first and its workflow started second, so a crash (or Temporal being down)
between the two leaves a scheduled post without a workflow, never a workflow without a post. Starting is
idempotent (workflow id ``post-{id}``, USE_EXISTING), and every start is recorded on the post; the reconciler
(``api.reconciler``) starts whatever scheduled post has no start recorded since it became scheduled, and
``signal_post`` starts a missing workflow before signalling it. Running either twice, or while the original
request is still starting the same post (or recording its start), starts nothing twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from datetime import UTC, datetime, timedelta

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from api.crud import workflow_starts
from api.deps import AppServices
from chronogram import scheduling
from chronogram.contracts import (
    SIGNAL_INPUTS,
    CancelRequest,
    PostSignal,
    PostState,
    PublishNowRequest,
    RescheduleRequest,
    ScheduledPostResult,
    SignalOutcome,
    SignalOutcomeQuery,
    post_workflow_id,
)
from chronogram.enums import PostStatus
from chronogram.models import Post
from workflows.scheduled_post import ScheduledPostWorkflow

log = logging.getLogger("chronogram.api.temporal_gateway")

_Handle = WorkflowHandle[ScheduledPostWorkflow, ScheduledPostResult]

# What the API can ask of a scheduled post's workflow: the input of one of its signals.
SignalRequest = CancelRequest | PublishNowRequest | RescheduleRequest

# The signal each input goes with (the workflow's signal names, under which it also reports a refusal).
_SIGNAL_OF: dict[type[SignalRequest], PostSignal] = {
    request_type: signal for signal, request_type in SIGNAL_INPUTS.items()
}


class WorkflowMissing(Exception):
    """The post has no workflow, or it has already completed."""


class SignalNotDelivered(Exception):
    """The post's workflow is missing and was not started again: the post is no longer scheduled (or no longer
    exists: ``status`` None), or its workflow ended again before the signal landed."""

    def __init__(self, post_id: int, status: PostStatus | None) -> None:
        super().__init__(f"post {post_id} ({status}) has no workflow to signal")
        self.post_id = post_id
        self.status = status


class StartFailed(Exception):
    """The missing workflow of a scheduled post could not be started (logged where it happened)."""


def handle_for(services: AppServices, post_id: int) -> _Handle:
    return services.temporal.get_workflow_handle_for(ScheduledPostWorkflow.run, post_workflow_id(post_id))


# --- starting -----------------------------------------------------------------------------------------------------


async def start(
    services: AppServices, request: workflow_starts.WorkflowStart, *, record_later: bool = False
) -> str:
    """Start the post's workflow (or find the running one) and record it; returns the run id.

    ``record_later`` queues the record for the next batch (``api.start_records``, which explains why a late or
    lost record is safe) instead of writing it before returning. Only post creation does that: it is the one
    frequent start, and its answer shows no history. Every other start records now: a retry's answer and the
    signal after a repaired start show the history, and the reconciler's next pass must find its own records.
    """
    handle = await scheduling.start_post_workflow(
        services.temporal,
        post_id=request.post_id,
        account_id=request.account_id,
        username=request.username,
        post_type=request.post_type,
        publish_at=request.publish_at,
    )
    started = workflow_starts.StartedRun(
        post_id=request.post_id,
        run_id=handle.result_run_id or "",
        intent_id=request.intent_id,
        started_at=datetime.now(UTC),
    )
    if record_later:
        services.start_records.add(started)
    else:
        await run_in_threadpool(_record_start, services, started)
    return started.run_id


def _record_start(services: AppServices, started: workflow_starts.StartedRun) -> None:
    with Session(services.engine) as session:
        workflow_starts.record_workflow_starts(session, [started])


async def start_or_leave_to_reconciler(
    services: AppServices, request: workflow_starts.WorkflowStart, *, record_later: bool = False
) -> bool:
    """Start now if possible. A failure is logged, not raised: the post is recorded, and the reconciler will
    start it; failing the request would only invite a retry that schedules the post twice."""
    try:
        await start(services, request, record_later=record_later)
    except Exception:
        log.warning(
            "could not start the workflow of post %s; the reconciler will", request.post_id, exc_info=True
        )
        return False
    return True


async def ensure_started(services: AppServices, post_id: int) -> None:
    """Start the workflow of a recorded post whose workflow is missing (e.g. its start was lost)."""
    request = await run_in_threadpool(_workflow_start, services, post_id)
    if request is not None:
        await start(services, request)


def _workflow_start(services: AppServices, post_id: int) -> workflow_starts.WorkflowStart | None:
    with Session(services.engine) as session:
        return workflow_starts.workflow_start(session, post_id=post_id)


def _start_if_scheduled(
    services: AppServices, post_id: int
) -> tuple[PostStatus | None, workflow_starts.WorkflowStart | None]:
    """The post's stored status, and what starting its workflow needs if it is still scheduled."""
    with Session(services.engine) as session:
        post = session.get(Post, post_id)
        if post is None or post.status is not PostStatus.SCHEDULED:
            return (post.status if post is not None else None), None
        return post.status, workflow_starts.workflow_start(session, post_id=post_id)


# --- signals and queries ------------------------------------------------------------------------------------------


async def signal_post(services: AppServices, post_id: int, signal: SignalRequest) -> str:
    """Send ``signal`` to the post's workflow, under a new request id, which it returns: ``signal_outcome`` reads
    back what the workflow made of it. If the workflow is missing while the post is still scheduled (its start
    was lost), start it first and send the signal again, so that every change goes through the workflow.

    Raises ``SignalNotDelivered`` if the post has no workflow and is no longer scheduled, ``StartFailed`` if its
    missing workflow could not be started, and ``RPCError`` if Temporal failed the signal.
    """
    signal = dataclasses.replace(signal, request_id=uuid.uuid4().hex)
    try:
        try:
            await _send(services, post_id, signal)
            return signal.request_id
        except WorkflowMissing:
            # Finished since the row was read, or never started: look again.
            status, request = await run_in_threadpool(_start_if_scheduled, services, post_id)
        if request is None:
            raise SignalNotDelivered(post_id, status)
        try:
            await start(services, request)
        except Exception as error:
            log.warning("could not start the missing workflow of post %s", post_id, exc_info=True)
            raise StartFailed(post_id) from error
        try:
            await _send(services, post_id, signal)
        except WorkflowMissing:
            status, _request = await run_in_threadpool(_start_if_scheduled, services, post_id)
            raise SignalNotDelivered(post_id, status) from None
    except RPCError as error:
        log.warning("signal %s to post %s failed: %s", _SIGNAL_OF[type(signal)], post_id, error)
        raise
    return signal.request_id


async def _send(services: AppServices, post_id: int, signal: SignalRequest) -> None:
    try:
        await handle_for(services, post_id).signal(_SIGNAL_OF[type(signal)].value, signal)
    except RPCError as error:
        # NOT_FOUND also means "already completed": either way nothing is listening any more.
        if error.status == RPCStatusCode.NOT_FOUND:
            raise WorkflowMissing() from None
        raise


async def signal_outcome(services: AppServices, post_id: int, request_id: str) -> SignalOutcome | None:
    """What the workflow made of the signal sent as ``request_id`` (accepted, or refused and why); None when it
    cannot answer in time (e.g. no worker is running). Asked after the signal was sent, so it is answered after
    the workflow has handled it."""
    timeout = services.settings.api_workflow_query_timeout_seconds
    try:
        return await asyncio.wait_for(
            handle_for(services, post_id).query(
                ScheduledPostWorkflow.signal_outcome,
                SignalOutcomeQuery(request_id),
                rpc_timeout=timedelta(seconds=timeout),
            ),
            timeout + 1,
        )
    except (RPCError, TimeoutError, WorkflowQueryFailedError) as error:
        log.info("workflow of post %s did not say what became of signal %s: %s", post_id, request_id, error)
    return None


async def query_state(services: AppServices, post_id: int) -> PostState | None:
    """The workflow's live state, or None when it cannot answer in time (e.g. no worker is running)."""
    timeout = services.settings.api_workflow_query_timeout_seconds
    try:
        return await asyncio.wait_for(
            handle_for(services, post_id).query(
                ScheduledPostWorkflow.state, rpc_timeout=timedelta(seconds=timeout)
            ),
            timeout + 1,
        )
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise WorkflowMissing() from None
        log.info("workflow of post %s did not answer its query: %s", post_id, error)
    except (TimeoutError, WorkflowQueryFailedError) as error:
        log.info("workflow of post %s did not answer its query: %s", post_id, error)
    return None


async def wait_closed(services: AppServices, post_id: int, wait_seconds: float) -> bool:
    """Wait for the post's current run to close, however it ends; False if it is still running at the timeout."""
    handle = handle_for(services, post_id)
    try:
        description = await handle.describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return True
        raise
    if description.status != WorkflowExecutionStatus.RUNNING:
        return True
    try:
        await asyncio.wait_for(handle.result(), wait_seconds)
    except TimeoutError:
        return False
    except WorkflowFailureError:
        pass
    return True


# --- runs that ended without finishing their post ----------------------------------------------------------------

# How a post's run can end without recording an ending of its own: an operator's cancellation or termination, a
# run timeout, or a failure the workflow did not raise itself. A reset also terminates the run it replaces.
_UNFINISHED_ENDINGS = ("Canceled", "Terminated", "TimedOut", "Failed")


@dataclasses.dataclass(frozen=True)
class ClosedRun:
    post_id: int
    run_id: str
    status: WorkflowExecutionStatus
    # What Temporal recorded of who ended it and why (its identity and reason), where it says.
    requested_by: str = ""
    reason: str = ""


async def runs_ended_unfinished(services: AppServices, *, closed_after: datetime | None) -> list[int]:
    """The posts of which a run ended by other means than the workflow's own (newest first, at most once each)."""
    statuses = ", ".join(f"'{status}'" for status in _UNFINISHED_ENDINGS)
    query = f"WorkflowType = '{ScheduledPostWorkflow.__name__}' AND ExecutionStatus IN ({statuses})"
    if closed_after is not None:
        query += f" AND CloseTime > '{closed_after.astimezone(UTC).isoformat()}'"
    post_ids: dict[int, None] = {}
    async for execution in services.temporal.list_workflows(query, page_size=1000):
        post_id = post_id_of(execution.id)
        if post_id is not None:
            post_ids.setdefault(post_id)
    return list(post_ids)


async def latest_run_if_closed(services: AppServices, post_id: int) -> ClosedRun | None:
    """The post's latest run, if it is closed (None while one runs, or if it has none), with what Temporal
    recorded of its ending."""
    try:
        description = await handle_for(services, post_id).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    if description.status in (None, WorkflowExecutionStatus.RUNNING):
        return None
    assert description.status is not None
    run = services.temporal.get_workflow_handle(post_workflow_id(post_id), run_id=description.run_id)
    requested_by, reason = "", ""
    if description.status in (WorkflowExecutionStatus.CANCELED, WorkflowExecutionStatus.TERMINATED):
        async for event in run.fetch_history_events():
            if event.HasField("workflow_execution_cancel_requested_event_attributes"):
                attributes = event.workflow_execution_cancel_requested_event_attributes
                requested_by, reason = attributes.identity, attributes.cause
            elif event.HasField("workflow_execution_terminated_event_attributes"):
                attributes_t = event.workflow_execution_terminated_event_attributes
                requested_by, reason = attributes_t.identity, attributes_t.reason
    return ClosedRun(
        post_id=post_id,
        run_id=description.run_id,
        status=description.status,
        requested_by=requested_by,
        reason=reason,
    )


def post_id_of(workflow_id: str) -> int | None:
    prefix = post_workflow_id("")
    if not workflow_id.startswith(prefix) or not workflow_id[len(prefix) :].isdigit():
        return None
    return int(workflow_id[len(prefix) :])
