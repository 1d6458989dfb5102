"""One reconciler at a time across API processes: each pass runs under a PostgreSQL advisory lock that the other
processes' passes try, and skip when it is taken.

Two API processes reconciling at once would be correct but wasteful and noisy: every start is idempotent
(workflow id ``post-{id}``) and every repair is conditional on the run it saw (``crud.restart_after_run``), yet
both would list the same runs, start the same workflows and log the same repairs. The lock is a session lock on a
connection of its own, so a process that dies mid-pass releases it with its connection. SQLite serves one host
and, in practice, one API process: there every pass runs.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from sqlalchemy import Connection, Engine, text
from starlette.concurrency import run_in_threadpool

log = logging.getLogger("chronogram.api.reconciler")

# pg_advisory_lock's key space is shared by every client of the database: one fixed, recognisable key.
LOCK_KEY = 0x4348_524F_4E4F_0001  # "CHRONO" + 1


@contextlib.asynccontextmanager
async def reconciler_lease(engine: Engine) -> AsyncIterator[bool]:
    """Yields whether this process holds the lease for the block (always on SQLite); never waits for it."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    connection = await run_in_threadpool(engine.connect)
    held = False
    try:
        held = await run_in_threadpool(_try_lock, connection)
        yield held
    finally:
        await run_in_threadpool(_release, connection, held)


def _try_lock(connection: Connection) -> bool:
    held = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY}).scalar_one()
    connection.commit()  # the lock is the session's, not the transaction's: close the transaction
    return bool(held)


def _release(connection: Connection, held: bool) -> None:
    try:
        if held:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
            connection.commit()
    except Exception:
        # A connection that may still hold the lock must not go back to the pool: dropping it releases the lock.
        log.exception("reconciler: could not release the lease; dropping its connection")
        connection.invalidate()
    finally:
        connection.close()
