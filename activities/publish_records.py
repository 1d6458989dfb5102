"""The writes of the Instagram activities around a publish, by group commit on one thread of their own: that a
media_publish call is about to be sent (posts.last_publish_call), and a first-comment call
(posts.first_comment_calls), and what Instagram gave back (the media id, the permalink, the first comment's id).

Each caller waits until its record is committed; the records that arrive while one transaction is written go
together in the next. At a burst's instant a thousand calls then wait for a few writes, not for a thousand. One
writer thread, not the event loop's shared pool: a call's record never queues behind other work, and the writes
never contend with each other for SQLite's one write lock (whose busy handler backs off for up to 100 ms a try).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import Engine

from activities.rows import post_not_found
from chronogram import lifecycle


class Column(StrEnum):
    """What is written: a column of posts."""

    PUBLISH_CALL = "last_publish_call"
    FIRST_COMMENT_CALL = "first_comment_calls"
    MEDIA_ID = "ig_media_id"
    PERMALINK = "permalink"
    FIRST_COMMENT_ID = "ig_first_comment_id"


@dataclass
class _Record:
    column: Column
    post_id: int
    value: str
    done: asyncio.Future[None] = field(repr=False)


class PublishRecords:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish-records")
        self._pending: list[_Record] = []
        self._writing: asyncio.Task[None] | None = None

    async def call_about_to_be_sent(self, post_id: int, call: str) -> None:
        """Committed before the call is sent, so that an attempt whose worker died reads back whether its call can
        have reached Instagram. Raises PostNotFound if the post is gone (its call must not be sent)."""
        await self._record(Column.PUBLISH_CALL, post_id, call)

    async def first_comment_about_to_be_sent(self, post_id: int) -> None:
        """Counted before the call is sent: the attempts after it look for the comment before creating one."""
        await self._record(Column.FIRST_COMMENT_CALL, post_id, "")

    async def published(self, post_id: int, column: Column, value: str) -> None:
        """What Instagram gave back (a post deleted meanwhile is left alone)."""
        await self._record(column, post_id, value)

    async def _record(self, column: Column, post_id: int, value: str) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Record(column, post_id, value, done))
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write_pending())
        await done

    async def _write_pending(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                missing = await loop.run_in_executor(self._executor, self._write, batch)
            except Exception as error:  # the batch's callers fail alike, as each would have alone
                for record in batch:
                    if not record.done.done():
                        record.done.set_exception(error)
                continue
            for record in batch:
                if record.done.done():
                    continue  # its activity was cancelled meanwhile
                if record.column is Column.PUBLISH_CALL and record.post_id in missing:
                    record.done.set_exception(post_not_found(record.post_id))
                else:
                    record.done.set_result(None)

    def _write(self, batch: list[_Record]) -> set[int]:
        """One transaction: the posts whose calls were recorded but that no longer exist."""

        def of(column: Column) -> list[tuple[int, str]]:
            return [(record.post_id, record.value) for record in batch if record.column is column]

        with self._engine.begin() as connection:
            missing = lifecycle.record_publish_calls(connection, of(Column.PUBLISH_CALL))
            lifecycle.record_first_comment_calls(
                connection, [post_id for post_id, _ in of(Column.FIRST_COMMENT_CALL)]
            )
            for column in (Column.MEDIA_ID, Column.PERMALINK, Column.FIRST_COMMENT_ID):
                lifecycle.record_many_published(connection, column.value, of(column))
        return missing
