"""The reconciler: starts the workflows of scheduled posts that have none, finishes the disconnections of
accounts that a DELETE began but could not finish (see ``api.use_cases.accounts``), and at start-up starts the
token workflow of every connected account (``api.account_workflows``).

A post is recorded before its workflow is started, and every start is recorded on the post (see
``api.temporal_gateway``). A scheduled post with no start recorded since it last became scheduled may have no
workflow, because its request died, or Temporal was down, between the two: the reconciler starts it, at start-up
and then periodically. Starting is idempotent, so starting a post that did have a workflow starts nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from temporalio.service import RPCError, RPCStatusCode

from api import account_workflows, temporal_gateway
from api.crud import accounts as account_crud
from api.crud import workflow_starts
from api.deps import AppServices
from api.use_cases import accounts

log = logging.getLogger("chronogram.api.reconciler")

_RECONCILE_BATCH = 100


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
    while True:
        try:
            while len(await reconcile_once(services, grace=grace)) == _RECONCILE_BATCH:
                pass  # a full batch: there may be more
            await finish_disconnections(services)
        except Exception:
            log.exception("reconciler pass failed")
        if settings.api_reconcile_interval_seconds == 0:
            return
        try:
            await asyncio.wait_for(stop.wait(), settings.api_reconcile_interval_seconds)
            return
        except TimeoutError:
            continue
