"""Everything the API asks of a post's workflow: start it, signal it, query it, and repair lost starts.

A post is written to the database first and its workflow started second, so a crash (or Temporal being down)
between the two leaves a scheduled post without a workflow, never a workflow without a post. Starting is
idempotent (workflow id ``post-{id}``, USE_EXISTING), and every start is recorded on the post; the reconciler
starts whatever scheduled post has no start recorded since it became scheduled. Running it twice, or while the
original request is still starting the same post (or recording its start), starts nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
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

from api.crud import posts as crud
from api.deps import AppServices
from chronogram import scheduling
from chronogram.contracts import (
    CancelRequest,
    PostState,
    PublishNowRequest,
    RescheduleRequest,
    ScheduledPostResult,
    post_workflow_id,
)
from workflows.scheduled_post import ScheduledPostWorkflow

log = logging.getLogger("chronogram.api.workflows")

_RECONCILE_BATCH = 100

_Handle = WorkflowHandle[ScheduledPostWorkflow, ScheduledPostResult]
_Send = Callable[[_Handle], Awaitable[None]]


class WorkflowMissing(Exception):
    """The post has no workflow, or it has already completed."""


def handle_for(services: AppServices, post_id: int) -> _Handle:
    return services.temporal.get_workflow_handle_for(ScheduledPostWorkflow.run, post_workflow_id(post_id))


async def start(services: AppServices, request: crud.WorkflowStart, *, record_later: bool = False) -> str:
    """Start the post's workflow (or find the running one) and record it; returns the run id.

    ``record_later`` queues the record for the next batch (``api.start_records``, which explains why a late or
    lost record is safe) instead of writing it before returning. Only POST /v1/posts does that: it is the one
    frequent start, and its answer shows no history. Every other start records now: a retry's answer and the
    signal after ``ensure_started`` show the history, and the reconciler's next pass must find its own records.
    """
    handle = await scheduling.start_post_workflow(
        services.temporal,
        post_id=request.post_id,
        account_id=request.account_id,
        username=request.username,
        post_type=request.post_type,
        publish_at=request.publish_at,
    )
    started = crud.StartedRun(
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


def _record_start(services: AppServices, started: crud.StartedRun) -> None:
    with Session(services.engine) as session:
        crud.record_workflow_starts(session, [started])


async def start_or_leave_to_reconciler(
    services: AppServices, request: crud.WorkflowStart, *, record_later: bool = False
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
    """Before signalling a scheduled post whose workflow is missing: start it first, so the signal lands."""
    request = await run_in_threadpool(_workflow_start, services, post_id)
    if request is not None:
        await start(services, request)


def _workflow_start(services: AppServices, post_id: int) -> crud.WorkflowStart | None:
    with Session(services.engine) as session:
        return crud.workflow_start(session, post_id=post_id)


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


async def signal_cancel(services: AppServices, post_id: int, reason: str) -> None:
    await _signal(
        services, post_id, lambda handle: handle.signal(ScheduledPostWorkflow.cancel, CancelRequest(reason))
    )


async def signal_publish_now(services: AppServices, post_id: int, reason: str) -> None:
    await _signal(
        services,
        post_id,
        lambda handle: handle.signal(ScheduledPostWorkflow.publish_now, PublishNowRequest(reason)),
    )


async def signal_reschedule(services: AppServices, post_id: int, publish_at: datetime) -> None:
    await _signal(
        services,
        post_id,
        lambda handle: handle.signal(
            ScheduledPostWorkflow.reschedule, RescheduleRequest(publish_at=publish_at)
        ),
    )


async def _signal(services: AppServices, post_id: int, send: _Send) -> None:
    try:
        await send(handle_for(services, post_id))
    except RPCError as error:
        # NOT_FOUND also means "already completed": either way nothing is listening any more.
        if error.status == RPCStatusCode.NOT_FOUND:
            raise WorkflowMissing() from None
        raise


def refused(state: PostState | None, signal: str) -> bool:
    """Whether the workflow refused ``signal`` (publishing had begun, or a cancel came first). Once the workflow
    refuses signals it refuses every later one, so any refusal of this signal means the one just sent was
    refused too."""
    return state is not None and any(item.signal == signal for item in state.refused_signals)


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


# --- the reconciler -------------------------------------------------------------------------------------------


async def reconcile_once(services: AppServices, *, grace: timedelta) -> list[int]:
    """Start the workflows of scheduled posts that have none; returns the ids of the posts started."""
    # Posts this process started but has not recorded yet are not missing anything.
    await services.start_records.flush()
    pending = await run_in_threadpool(_pending, services, datetime.now(UTC) - grace)
    started: list[int] = []
    for request in pending:
        try:
            await start(services, request)
        except RPCError as error:
            log.warning("reconciler: Temporal refused the start of post %s: %s", request.post_id, error)
            if error.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
                break  # Temporal is down: the next pass will try again
            continue
        except Exception:
            # e.g. WorkflowAlreadyStartedError: the id's last run completed, so the post must not run again.
            log.exception("reconciler: could not start the workflow of post %s", request.post_id)
            continue
        log.warning("reconciler: started the missing workflow of post %s", request.post_id)
        started.append(request.post_id)
    return started


def _pending(services: AppServices, updated_before: datetime) -> list[crud.WorkflowStart]:
    with Session(services.engine) as session:
        return crud.posts_awaiting_workflow(session, updated_before=updated_before, limit=_RECONCILE_BATCH)


async def run_reconciler(services: AppServices, stop: asyncio.Event) -> None:
    """At start-up, then every interval until ``stop`` is set; a failed pass never ends the loop."""
    settings = services.settings
    grace = timedelta(seconds=settings.api_reconcile_grace_seconds)
    while True:
        try:
            while len(await reconcile_once(services, grace=grace)) == _RECONCILE_BATCH:
                pass  # a full batch: there may be more
        except Exception:
            log.exception("reconciler pass failed")
        if settings.api_reconcile_interval_seconds == 0:
            return
        try:
            await asyncio.wait_for(stop.wait(), settings.api_reconcile_interval_seconds)
            return
        except TimeoutError:
            continue
