"""Posts sent with queue: true at the same moment never share a slot, on SQLite and on PostgreSQL: the loser of a
race for a slot sees queue_slots' primary key refuse its claim and takes the next free slot."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from api.crud import queues as queue_crud
from api.schemas.posts import PostCreate
from api.sqlite_writes import serialize_writes
from api.use_cases import queues
from chronogram.crypto import TokenCipher
from chronogram.enums import PostType
from chronogram.posting_schedule import PostingSchedule, Weekday, upcoming_slots, weekly_slots
from chronogram.settings import Settings
from tests.support.db import NewDatabase, schema_engine
from tests.support.factories import add_account, add_image, add_user, id_of

RACERS = 8


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine: Engine = request.getfixturevalue("sqlite_engine")
        serialize_writes(engine)  # as the API does
        yield engine
        return
    new_database: NewDatabase = request.getfixturevalue("new_pg_database")
    with schema_engine(new_database()) as pg:
        yield pg


def test_racing_queue_requests_take_distinct_slots(engine: Engine, settings: Settings) -> None:
    schedule = PostingSchedule(
        time_zone="Europe/Paris",
        slots=weekly_slots(list(Weekday), [datetime(2026, 1, 1, hour).time() for hour in range(8, 20)]),
    )
    cipher = TokenCipher([TokenCipher.generate_key()])
    with Session(engine, expire_on_commit=False) as session:
        owner = add_user(session)
        account = add_account(session, owner, cipher)
        media = add_image(session, owner)
        session.commit()
        owner_id, account_id, media_id = id_of(owner), id_of(account), id_of(media)
        queue_crud.put_schedule(session, owner_id=owner_id, account_id=account_id, schedule=schedule)

    now = datetime.now(UTC)
    body = PostCreate(
        account_id=account_id, type=PostType.IMAGE, media_ids=[media_id], caption="race", queue=True
    )
    start = threading.Barrier(RACERS)

    def racer(_index: int) -> datetime:
        with Session(engine, expire_on_commit=False) as session:
            start.wait()
            created = queues.create_queued(
                session,
                body,
                owner_id=owner_id,
                settings=settings,
                now=now,
                idempotency_key=None,
                fingerprint=None,
            )
            return created.post.publish_at

    with ThreadPoolExecutor(RACERS) as pool:
        taken = list(pool.map(racer, range(RACERS)))

    expected = [slot.at for slot in upcoming_slots(schedule, after=now, until=now + timedelta(days=30))][
        :RACERS
    ]
    assert sorted(taken) == expected
