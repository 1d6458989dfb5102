"""Group commit: writes that many activities make at once, committed together by one thread of their own.

Each caller waits until the transaction holding its item is committed; the items that arrive while one transaction
is written go together in the next. At a burst's instant a thousand callers then wait for a few transactions, not
for a thousand, and the writes never contend with each other for SQLite's one write lock (whose busy handler backs
off for up to 100 ms a try) nor queue behind other work in the event loop's shared thread pool.

``write`` runs one batch in one transaction and answers, item by item, None (written) or the error that item's
caller gets (an item the database refused without writing anything, such as a transition the lifecycle refused).
An error that escapes ``write`` rolls the whole batch back. A batch of several is then written again item by item,
so that an item no write can take fails only its own caller, not every caller that came at the same moment (an item
alone gets its error at once); an error of the database itself (locked, unreachable: sqlalchemy's OperationalError)
is raised to every caller at once instead, as each would meet it alone. Their activities retry, and each write is
idempotent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy.exc import OperationalError

Item = TypeVar("Item")

Write = Callable[[Sequence[Item]], Sequence[BaseException | None]]


@dataclass
class _Waiting(Generic[Item]):
    item: Item
    done: asyncio.Future[None] = field(repr=False)


class GroupCommit(Generic[Item]):
    def __init__(self, write: Write[Item], *, thread_name: str) -> None:
        self._write = write
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._pending: list[_Waiting[Item]] = []
        self._writing: asyncio.Task[None] | None = None
        self.transactions = 0  # how many batches were written (what a test or a benchmark reads)

    async def submit(self, item: Item) -> None:
        """Return once ``item`` is committed; raise its error if it has one."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Waiting(item, done))
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write_pending())
        await done

    async def _write_pending(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending, []
            items = [waiting.item for waiting in batch]
            try:
                outcomes = await loop.run_in_executor(self._executor, self._write_batch, items)
            except OperationalError as error:
                outcomes = [error] * len(batch)
            except Exception as error:
                # Alone already: written again, it would only meet the same error.
                outcomes = (
                    [error]
                    if len(items) == 1
                    else [
                        await loop.run_in_executor(self._executor, self._write_alone, item) for item in items
                    ]
                )
            for waiting, outcome in zip(batch, outcomes, strict=True):
                if waiting.done.done():
                    continue  # its activity was cancelled meanwhile
                if outcome is None:
                    waiting.done.set_result(None)
                else:
                    waiting.done.set_exception(outcome)

    def _write_batch(self, items: Sequence[Item]) -> Sequence[BaseException | None]:
        self.transactions += 1
        outcomes = self._write(items)
        if len(outcomes) != len(items):
            raise RuntimeError(f"a write answered {len(outcomes)} outcomes for {len(items)} items")
        return outcomes

    def _write_alone(self, item: Item) -> BaseException | None:
        try:
            return self._write_batch([item])[0]
        except Exception as error:
            return error
