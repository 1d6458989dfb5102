"""The reconciler: starts the workflows of scheduled posts that have none, repairs posts whose workflow run ended
without finishing them (an operator's cancel, terminate or reset in Temporal, a timeout), finishes the
disconnections of accounts that a DELETE began but could not finish (see ``api.use_cases.accounts``), sweeps the
media bucket's orphans (``api.media_sweep``, at most once per its own interval), and at start-up starts the token
workflow of every connected account (``api.account_workflows``).

A post is recorded before its workflow is started, and every start is recorded on the post (see
``api.temporal_gateway``). A scheduled post with no start recorded since it last became scheduled may have no
workflow, because its request died, or Temporal was down, between the two: the reconciler starts it, at start-up
and then periodically. Starting is idempotent, so starting a post that did have a workflow starts nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from api import account_workflows, temporal_gateway
from api.crud import accounts as account_crud
from api.crud import posts as crud
from api.crud import workflow_starts
from api.deps import AppServices
from api.media_sweep import sweep_orphans
from api.reconciler_lease import reconciler_lease
from api.use_cases import accounts
from chronogram.enums import PostStatus

log = logging.getLogger("chronogram.api.reconciler")

_RECONCILE_BATCH = 100
_VISIBILITY_MARGIN = timedelta(minutes=5)
_T = TypeVar("_T")


async def reconcile_once(services: AppServices, *, grace: timedelta) -> list[int]:
    """Start the workflows of scheduled posts that have none; returns the ids of the posts started."""
    # Posts this process started but has not recorded yet are not missing anything.
    await services.start_records.flush()
    pending = await run_in_threadpool(_pending, services, datetime.now(UTC) - grace)
    started: list[int] = []
    for request in pending:
        try:
            await temporal_gateway.start(services, request)
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


async def repair_unfinished_runs(services: AppServices, *, closed_after: datetime | None) -> list[int]:
    """Posts still scheduled or publishing whose latest run is closed: a run cancelled through Temporal while the
    post was scheduled finishes it as cancelled, naming who asked; any other (terminated, timed out, cancelled
    while publishing) hands it to a fresh run, which finds out from Instagram whatever the dead run did before it
    publishes anything (the exactly-once protocol). Returns the ids of the posts repaired."""
    candidates = await temporal_gateway.runs_ended_unfinished(services, closed_after=closed_after)
    if not candidates:
        return []
    open_posts = await run_in_threadpool(_open_posts, services, candidates)
    repaired: list[int] = []
    for post_id, status in open_posts.items():
        try:
            if await _repair(services, post_id, status):
                repaired.append(post_id)
        except Exception:
            log.exception("reconciler: could not repair post %s", post_id)
    return repaired


async def _repair(services: AppServices, post_id: int, status: PostStatus) -> bool:
    run = await temporal_gateway.latest_run_if_closed(services, post_id)
    if run is None or run.status is WorkflowExecutionStatus.COMPLETED:
        return False  # a run is going (a reset's, a retry's), or the post's last run finished it
    who = f" by {run.requested_by}" if run.requested_by else ""
    why = f" ({run.reason})" if run.reason else ""
    ending = _ENDINGS.get(run.status, run.status.name.lower())
    if run.status is WorkflowExecutionStatus.CANCELED and status is PostStatus.SCHEDULED:
        reason = f"cancelled in Temporal{who}{why}"
        applied = await run_in_threadpool(
            _in_session, services, crud.cancel_after_run, post_id=post_id, run_id=run.run_id, reason=reason
        )
        if applied:
            log.warning("reconciler: post %s %s", post_id, reason)
        return applied
    reason = f"its workflow run was {ending} in Temporal{who}{why}; a new run takes over"
    applied = await run_in_threadpool(
        _in_session, services, crud.restart_after_run, post_id=post_id, run_id=run.run_id, reason=reason
    )
    if not applied:
        return False
    log.warning("reconciler: post %s: %s", post_id, reason)
    request = await run_in_threadpool(_in_session, services, workflow_starts.workflow_start, post_id=post_id)
    if request is not None:
        await temporal_gateway.start_or_leave_to_reconciler(services, request)
    return True


_ENDINGS = {
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.TIMED_OUT: "timed out",
    WorkflowExecutionStatus.FAILED: "failed",
}


def _open_posts(services: AppServices, post_ids: list[int]) -> dict[int, PostStatus]:
    with Session(services.engine) as session:
        return crud.open_posts(session, post_ids=post_ids)


def _in_session(services: AppServices, operation: Callable[..., _T], **arguments: Any) -> _T:
    with Session(services.engine) as session:
        return operation(session, **arguments)


async def finish_disconnections(services: AppServices) -> list[int]:
    """Carry on every disconnection under way; returns the ids of the accounts now deleted."""
    done: list[int] = []
    for account_id in await run_in_threadpool(_disconnecting, services):
        try:
            progress = await accounts.finish_disconnection(services, account_id)
        except Exception:
            log.exception("reconciler: could not carry on the disconnection of account %s", account_id)
            continue
        if progress is accounts.Progress.DONE:
            log.warning("reconciler: finished the disconnection of account %s", account_id)
            done.append(account_id)
    return done


def _disconnecting(services: AppServices) -> list[int]:
    with Session(services.engine) as session:
        return account_crud.disconnecting_accounts(session, limit=_RECONCILE_BATCH)


def _pending(services: AppServices, updated_before: datetime) -> list[workflow_starts.WorkflowStart]:
    with Session(services.engine) as session:
        return workflow_starts.posts_awaiting_workflow(
            session, updated_before=updated_before, limit=_RECONCILE_BATCH
        )


def _sweep_due(interval: float, last: datetime | None, now: datetime) -> bool:
    return interval > 0 and (last is None or now - last >= timedelta(seconds=interval))


async def run_reconciler(services: AppServices, stop: asyncio.Event) -> None:
    """At start-up, then every interval until ``stop`` is set; a failed pass never ends the loop."""
    settings = services.settings
    grace = timedelta(seconds=settings.api_reconcile_grace_seconds)
    try:
        # Once per start: every connected account has its token workflow (those connected before it existed, or
        # while Temporal was down, get one now).
        await account_workflows.ensure_token_workflows(services)
    except Exception:
        log.exception("reconciler: could not start the accounts' token workflows")
    # The first pass looks at every run that ever ended unfinished; the next ones at those since the last pass
    # began, with a margin for visibility's lag.
    closed_after: datetime | None = None
    last_sweep: datetime | None = None
    while True:
        began = datetime.now(UTC)
        try:
            # With several API processes, one pass at a time (api.reconciler_lease); the others skip theirs.
            async with reconciler_lease(services.engine) as leading:
                if leading:
                    while len(await reconcile_once(services, grace=grace)) == _RECONCILE_BATCH:
                        pass  # a full batch: there may be more
                    await repair_unfinished_runs(services, closed_after=closed_after)
                    closed_after = began - _VISIBILITY_MARGIN
                    await finish_disconnections(services)
                else:
                    log.info("reconciler: another API process is reconciling; this pass is skipped")
        except Exception:
            log.exception("reconciler pass failed")
        if _sweep_due(settings.api_media_sweep_interval_seconds, last_sweep, began):
            last_sweep = began
            try:
                await run_in_threadpool(
                    sweep_orphans,
                    services.storage,
                    settings.media_bucket,
                    services.engine,
                    grace=timedelta(seconds=settings.api_media_sweep_grace_seconds),
                )
            except Exception:
                log.exception("media sweep failed")
        if settings.api_reconcile_interval_seconds == 0:
            return
        try:
            await asyncio.wait_for(stop.wait(), settings.api_reconcile_interval_seconds)
            return
        except TimeoutError:
            continue
