"""SQLite writers of the API process take turns on a lock: a writer waits for the one before it however long it
writes, instead of polling SQLite until its busy timeout; the lock is freed however a transaction ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, create_engine, event

from api.sqlite_writes import serialize_writes

HOLD = 0.5


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    # SQLite alone would give up on a writer after 50 ms.
    engine = create_engine(f"sqlite:///{tmp_path / 'writes.db'}", connect_args={"timeout": 0.05})
    event.listen(engine, "connect", lambda dbapi, _record: dbapi.execute("PRAGMA journal_mode=WAL"))
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (n INTEGER)")
    serialize_writes(engine)
    yield engine
    engine.dispose()


def _insert(connection: Connection, n: int) -> None:
    connection.exec_driver_sql("INSERT INTO t (n) VALUES (?)", (n,))


def _while_writing(engine: Engine, end: Callable[[Connection], None]) -> float:
    """Another thread writes once this one has written and holds on for HOLD seconds before ``end``; returns how
    long the other thread's write took."""
    written = threading.Event()
    took: list[float] = []

    def other() -> None:
        written.wait()
        began = time.monotonic()
        with engine.begin() as connection:
            _insert(connection, 2)
        took.append(time.monotonic() - began)

    thread = threading.Thread(target=other)
    thread.start()
    connection = engine.connect()
    connection.begin()
    _insert(connection, 1)
    written.set()
    time.sleep(HOLD)
    end(connection)
    thread.join(10)
    assert took, "the other writer failed"
    return took[0]


def _rows(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return [n for (n,) in connection.exec_driver_sql("SELECT n FROM t ORDER BY n")]


def _commit(connection: Connection) -> None:
    connection.commit()
    connection.close()


def _rollback(connection: Connection) -> None:
    connection.rollback()
    connection.close()


def _invalidate(connection: Connection) -> None:
    connection.invalidate()
    connection.close()


@pytest.mark.parametrize(("end", "rows"), [(_commit, [1, 2]), (_rollback, [2]), (_invalidate, [2])])
def test_a_writer_waits_for_the_one_before_it(
    engine: Engine, end: Callable[[Connection], None], rows: list[int]
) -> None:
    assert _while_writing(engine, end) >= HOLD * 0.8
    assert _rows(engine) == rows
    began = time.monotonic()
    with engine.begin() as connection:  # nothing left holding the lock
        _insert(connection, 3)
    assert time.monotonic() - began < HOLD


def test_readers_do_not_wait(engine: Engine) -> None:
    connection = engine.connect()
    connection.begin()
    _insert(connection, 1)
    began = time.monotonic()
    assert _rows(engine) == []
    assert time.monotonic() - began < HOLD
    _commit(connection)
