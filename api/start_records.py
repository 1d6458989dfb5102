"""The "workflow started" records of new posts, written in batches off the request path.

POST /v1/posts answers once the post's workflow has started; the record of that start is queued here and written
together with the others of the last ``FLUSH_INTERVAL_SECONDS``, in one transaction. The record shows in the post's
history, and tells the reconciler (which starts scheduled posts with no start recorded) to leave the post alone.
The delay is safe:

- The reconciler leaves posts younger than ``api_reconcile_grace_seconds`` (10 s by default) alone, and each of
  its passes writes this process's queued records first. A post still counts as unstarted only when another API process
  queued its record and the post is older than the grace period: the reconciler then starts it again, which
  finds the running workflow (workflow id ``post-{id}``, USE_EXISTING), starts nothing and records the same run.
- A record that is lost (a crash, a failed write) costs the same idempotent start, once the grace period is over.
- A record that lands after its post was scheduled again (a retry's newer intent) is dropped, so that it cannot
  vouch for the retry's run (see ``workflow_starts.record_workflow_starts``).

Reading a post's history (GET /v1/posts/{id}) waits for the post's queued record, so that what this process
answers always shows the start it made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from types import TracebackType

from sqlalchemy import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.crud import workflow_starts

log = logging.getLogger("chronogram.api.start_records")

# Far below the reconciler's grace period, and long enough to gather a busy second's starts into a few writes.
FLUSH_INTERVAL_SECONDS = 0.2


class StartRecorder:
    """Queues workflow-start records and writes them in batches; ``async with`` runs it, and writes what is
    still queued on exit."""

    def __init__(self, engine: Engine, *, interval: float = FLUSH_INTERVAL_SECONDS) -> None:
        self._engine = engine
        self._interval = interval
        self._queue: list[workflow_starts.StartedRun] = []
        # Posts with a record queued or being written.
        self._unwritten: Counter[int] = Counter()
        self._queued = asyncio.Event()
        # One write at a time: flush() then returns only once everything queued before it has been written.
        self._writing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def __aenter__(self) -> StartRecorder:
        self._task = asyncio.create_task(self._run(), name="start-recorder")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closed = True
        if self._task is not None:
            async with self._writing:  # stopped between writes, so that none is left running in its thread
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        await self.flush()

    def add(self, started: workflow_starts.StartedRun) -> None:
        if self._closed:
            log.warning("start of post %s not recorded: shutting down; the reconciler will", started.post_id)
            return
        self._queue.append(started)
        self._unwritten[started.post_id] += 1
        self._queued.set()

    async def landed(self, post_id: int) -> None:
        """Return once the post's queued records are written (at once when it has none)."""
        if self._unwritten[post_id] > 0:
            await self.flush()

    async def flush(self) -> None:
        """Write everything queued so far; a failed write is logged, and its posts are left to the reconciler."""
        async with self._writing:
            batch, self._queue = self._queue, []
            if not batch:
                return
            try:
                await run_in_threadpool(self._write, batch)
            except Exception:
                log.warning(
                    "could not record the workflow starts of posts %s; the reconciler will start them again, "
                    "which starts nothing twice",
                    sorted({started.post_id for started in batch}),
                    exc_info=True,
                )
            finally:
                for started in batch:
                    self._unwritten[started.post_id] -= 1
                    if self._unwritten[started.post_id] == 0:
                        del self._unwritten[started.post_id]

    def _write(self, batch: list[workflow_starts.StartedRun]) -> None:
        with Session(self._engine) as session:
            workflow_starts.record_workflow_starts(session, batch)

    async def _run(self) -> None:
        while True:
            await self._queued.wait()
            await asyncio.sleep(self._interval)  # let the batch fill
            self._queued.clear()
            await self.flush()
