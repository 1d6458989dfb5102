"""Group commit (activities.group_commit) with a write that only records what it was given: callers at the same
moment share a transaction, an item no write can take fails only its own caller, and an error of the database
itself reaches every caller."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy.exc import OperationalError

from activities.group_commit import GroupCommit


class Unwritable(Exception):
    pass


class Ledger:
    """A write that commits what it is given, unless the batch holds a poisoned item (raised, nothing kept), and
    refuses the items it is told to (an outcome of their own, the rest kept)."""

    def __init__(self, poisoned: frozenset[int] = frozenset(), refused: frozenset[int] = frozenset()) -> None:
        self.poisoned = poisoned
        self.refused = refused
        self.database_down = False
        self.committed: list[int] = []
        self.batches: list[list[int]] = []

    def write(self, items: Sequence[int]) -> list[BaseException | None]:
        self.batches.append(list(items))
        if self.database_down:
            raise OperationalError("UPDATE posts", {}, Exception("database is locked"))
        if self.poisoned & set(items):
            raise Unwritable(sorted(self.poisoned & set(items)))
        self.committed.extend(item for item in items if item not in self.refused)
        return [ValueError(f"refused {item}") if item in self.refused else None for item in items]


async def test_callers_at_the_same_moment_share_a_transaction() -> None:
    ledger = Ledger()
    commits = GroupCommit(ledger.write, thread_name="test-group-commit")
    await asyncio.gather(*(commits.submit(item) for item in range(50)))
    assert sorted(ledger.committed) == list(range(50))
    assert commits.transactions == len(ledger.batches) <= 2

    await commits.submit(50)  # alone: a transaction of its own, at once
    assert ledger.batches[-1] == [50]


async def test_a_refused_item_fails_only_its_caller_in_the_same_transaction() -> None:
    ledger = Ledger(refused=frozenset({7}))
    commits = GroupCommit(ledger.write, thread_name="test-group-commit")
    outcomes = await asyncio.gather(*(commits.submit(item) for item in range(10)), return_exceptions=True)
    assert [type(outcome) for outcome in outcomes] == [type(None)] * 7 + [ValueError] + [type(None)] * 2
    assert sorted(ledger.committed) == [0, 1, 2, 3, 4, 5, 6, 8, 9]
    assert len(ledger.batches) <= 2


async def test_an_item_no_write_can_take_fails_alone_and_the_others_are_written_one_by_one() -> None:
    ledger = Ledger(poisoned=frozenset({3}))
    commits = GroupCommit(ledger.write, thread_name="test-group-commit")
    outcomes = await asyncio.gather(*(commits.submit(item) for item in range(6)), return_exceptions=True)
    assert isinstance(outcomes[3], Unwritable)
    assert [outcome for index, outcome in enumerate(outcomes) if index != 3] == [None] * 5
    assert sorted(ledger.committed) == [0, 1, 2, 4, 5]  # each once: the failed batch kept nothing
    assert [3] in ledger.batches


async def test_the_database_down_reaches_every_caller_at_once() -> None:
    ledger = Ledger()
    ledger.database_down = True
    commits = GroupCommit(ledger.write, thread_name="test-group-commit")
    outcomes = await asyncio.gather(*(commits.submit(item) for item in range(5)), return_exceptions=True)
    assert all(isinstance(outcome, OperationalError) for outcome in outcomes)
    assert len(ledger.batches) <= 2  # not tried again item by item

    ledger.database_down = False
    await commits.submit(5)  # back: the next caller is written
    assert ledger.committed == [5]


async def test_a_write_that_answers_for_the_wrong_number_of_items_fails_its_callers() -> None:
    def one_too_many(items: Sequence[int]) -> list[BaseException | None]:
        return [None] * (len(items) + 1)

    commits = GroupCommit(one_too_many, thread_name="test-group-commit")
    outcomes = await asyncio.gather(*(commits.submit(item) for item in range(3)), return_exceptions=True)
    assert all(isinstance(outcome, RuntimeError) and "outcomes" in str(outcome) for outcome in outcomes)


async def test_an_item_alone_that_no_write_can_take_is_tried_once() -> None:
    ledger = Ledger(poisoned=frozenset({1}))
    commits = GroupCommit(ledger.write, thread_name="test-group-commit")
    outcomes = await asyncio.gather(commits.submit(1), return_exceptions=True)
    assert isinstance(outcomes[0], Unwritable)
    assert ledger.batches == [[1]] and commits.transactions == 1
