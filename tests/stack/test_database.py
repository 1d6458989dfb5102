"""A SQLModel table round-trips on both supported databases: embedded SQLite and PostgreSQL via psycopg."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Field, Session, SQLModel, select

from chronogram.db import make_engine
from devstack.services import PostgresServer


class SmokeNote(SQLModel, table=True):
    __tablename__ = "smoke_note"

    id: int | None = Field(default=None, primary_key=True)
    body: str
    tags: str = ""
    created_at: datetime


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    if request.param == "sqlite":
        return make_engine(f"sqlite:///{tmp_path / 'smoke.db'}")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return make_engine(server.url)


def test_sqlmodel_table_round_trips(engine: Engine) -> None:
    SmokeNote.metadata.create_all(engine, tables=[SmokeNote.__table__])  # type: ignore[attr-defined]
    marker = f"héllo {uuid.uuid4()} 📸"
    created_at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    with Session(engine) as session:
        session.add(SmokeNote(body=marker, tags="a,b", created_at=created_at))
        session.commit()
    with Session(engine) as session:
        row = session.exec(select(SmokeNote).where(SmokeNote.body == marker)).one()
        assert row.id is not None
        assert row.tags == "a,b"
        assert row.created_at.replace(tzinfo=row.created_at.tzinfo or UTC) == created_at
    assert engine.dialect.name == ("sqlite" if "sqlite" in str(engine.url) else "postgresql")
