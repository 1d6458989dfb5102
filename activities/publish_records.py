"""The writes of the Instagram activities around a publish, by group commit (activities.group_commit): that a
media_publish call is about to be sent (posts.last_publish_call), and a first-comment call
(posts.first_comment_calls), and what Instagram gave back (the media id, the permalink, the first comment's id).
At a burst's instant a thousand calls wait for a few writes, not for a thousand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Engine

from activities.group_commit import GroupCommit
from activities.rows import post_not_found
from chronogram import lifecycle


class Column(StrEnum):
    """What is written: a column of posts."""

    PUBLISH_CALL = "last_publish_call"
    FIRST_COMMENT_CALL = "first_comment_calls"
    MEDIA_ID = "ig_media_id"
    PERMALINK = "permalink"
    FIRST_COMMENT_ID = "ig_first_comment_id"


@dataclass(frozen=True)
class _Record:
    column: Column
    post_id: int
    value: str


class PublishRecords:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._commits = GroupCommit(self._write, thread_name="publish-records")

    async def call_about_to_be_sent(self, post_id: int, call: str) -> None:
        """Committed before the call is sent, so that an attempt whose worker died reads back whether its call can
        have reached Instagram. Raises PostNotFound if the post is gone (its call must not be sent)."""
        await self._commits.submit(_Record(Column.PUBLISH_CALL, post_id, call))

    async def first_comment_about_to_be_sent(self, post_id: int) -> None:
        """Counted before the call is sent: the attempts after it look for the comment before creating one."""
        await self._commits.submit(_Record(Column.FIRST_COMMENT_CALL, post_id, ""))

    async def published(self, post_id: int, column: Column, value: str) -> None:
        """What Instagram gave back (a post deleted meanwhile is left alone)."""
        await self._commits.submit(_Record(column, post_id, value))

    def _write(self, batch: Sequence[_Record]) -> list[BaseException | None]:
        """One transaction; a publish call recorded for a post that no longer exists is refused (PostNotFound)."""

        def of(column: Column) -> list[tuple[int, str]]:
            return [(record.post_id, record.value) for record in batch if record.column is column]

        with self._engine.begin() as connection:
            missing = lifecycle.record_publish_calls(connection, of(Column.PUBLISH_CALL))
            lifecycle.record_first_comment_calls(
                connection, [post_id for post_id, _ in of(Column.FIRST_COMMENT_CALL)]
            )
            for column in (Column.MEDIA_ID, Column.PERMALINK, Column.FIRST_COMMENT_ID):
                lifecycle.record_many_published(connection, column.value, of(column))
        return [
            post_not_found(record.post_id)
            if record.column is Column.PUBLISH_CALL and record.post_id in missing
            else None
            for record in batch
        ]
