"""GET /v1/posts stays fast at 10,000+ posts per account: every filter shape reads an index in order, and a deep
page costs what the first one does (keyset pagination, no OFFSET)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert
from sqlmodel import Session

from api.crud import posts as crud
from chronogram.crypto import TokenCipher
from chronogram.enums import PostStatus, PostType
from chronogram.models import Post
from tests.support.db import schema_engine
from tests.support.factories import add_account, add_user

POSTS = 10_000
PAGE = 200


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, int, int, int]]:
    """Its own database: 10,000 posts on one account, 500 on another, all of one user."""
    database = f"sqlite:///{Path(tmp_path_factory.mktemp('scale')) / 'scale.db'}"
    cipher = TokenCipher([TokenCipher.generate_key()])
    rng = random.Random(7)
    start = datetime(2027, 1, 1, tzinfo=UTC)
    statuses = [PostStatus.SCHEDULED, PostStatus.CANCELLED, PostStatus.FAILED]
    with schema_engine(database) as engine, Session(engine) as session:
        user = add_user(session, email="scale@example.com")
        assert user.id is not None
        accounts = [
            add_account(
                session, user, cipher, ig_user_id=ig, username=f"u{ig}", token="t", token_expires_at=None
            ).id
            for ig in ("1001", "1002")
        ]
        rows: list[dict[str, Any]] = []
        for index in range(POSTS + 500):
            rows.append(
                {
                    "owner_id": user.id,
                    "account_id": accounts[0] if index < POSTS else accounts[1],
                    "type": PostType.IMAGE,
                    "caption": f"post {index}",
                    # Many posts share an instant: the id has to break ties across page boundaries.
                    "publish_at": start + timedelta(minutes=rng.randrange(0, 60 * 24 * 180, 5)),
                    "status": rng.choice(statuses),
                }
            )
        session.execute(insert(Post), rows)
        session.commit()
        assert accounts[0] is not None and accounts[1] is not None
        yield engine, user.id, accounts[0], accounts[1]


def _walk(session: Session, **filters: Any) -> list[Post]:
    found: list[Post] = []
    after = None
    while True:
        page = crud.list_posts(session, limit=PAGE, after=after, **filters)
        found += page
        if len(page) < PAGE:
            return found
        after = (page[-1].publish_at, page[-1].id or 0)


def _fastest(session: Session, after: tuple[datetime, int] | None, **filters: Any) -> float:
    """The best of a few runs: what the query costs, without the noise of whatever else the machine does."""
    timings = []
    for _ in range(5):
        began = time.perf_counter()
        crud.list_posts(session, limit=PAGE, after=after, **filters)
        timings.append(time.perf_counter() - began)
    return min(timings)


def _ordered(posts: list[Post]) -> bool:
    keys = [(post.publish_at, post.id or 0) for post in posts]
    return keys == sorted(keys) and len(set(keys)) == len(keys)


@pytest.mark.parametrize(
    "shape",
    ["account", "account+status", "status", "owner"],
)
def test_every_filter_shape_pages_through_all_posts_in_order_quickly(
    big: tuple[Engine, int, int, int], shape: str
) -> None:
    engine, owner_id, account_id, other_id = big
    filters: dict[str, Any] = {"owner_id": owner_id}
    if "account" in shape:
        filters["account_id"] = account_id
    if "status" in shape:
        filters["status"] = PostStatus.FAILED
    with Session(engine) as session:
        posts = _walk(session, **filters)
        near_end = posts[-PAGE - 1]
        first = _fastest(session, None, **filters)
        deep = _fastest(session, (near_end.publish_at, near_end.id or 0), **filters)
    assert _ordered(posts)
    expected = POSTS if "account" in shape else POSTS + 500
    if "status" in shape:
        assert {post.status for post in posts} == {PostStatus.FAILED}
        assert 0.25 * expected < len(posts) < 0.42 * expected
    else:
        assert len(posts) == expected
    if "account" in shape:
        assert {post.account_id for post in posts} == {account_id}
    else:
        assert {post.account_id for post in posts} == {account_id, other_id}
    # The last page costs what the first one does: no OFFSET, no sort of everything before the cursor.
    assert deep < 3 * first + 0.005, (first, deep)
    assert first < 0.25, first


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({"account_id": 1}, "ix_posts_account_id_publish_at_id"),
        ({"status": PostStatus.SCHEDULED}, "ix_posts_owner_id_status_publish_at_id"),
        ({}, "ix_posts_owner_id_status_publish_at_id"),
    ],
    ids=["account", "status", "owner"],
)
def test_queries_read_an_index_in_order(
    big: tuple[Engine, int, int, int], filters: dict[str, Any], index: str
) -> None:
    engine, owner_id, _account_id, _other = big
    statements: list[tuple[str, Any]] = []

    def capture(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool
    ) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM posts" in statement:
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with Session(engine) as session:
            crud.list_posts(
                session,
                owner_id=owner_id,
                limit=PAGE,
                after=(datetime(2027, 3, 1, tzinfo=UTC), 5000),
                **filters,
            )
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    statement, parameters = statements[0]
    with engine.connect() as connection:
        plan = " | ".join(
            row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        )
    assert index in plan, plan
    # A covering index (the merged runs read only the id and publish_at it holds) is the same index range.
    plan = plan.replace("USING COVERING INDEX", "USING INDEX")
    assert "SCAN posts" not in plan.replace(f"SCAN posts USING INDEX {index}", ""), plan
    if filters:
        # Rows come out of the index in (publish_at, id) order: nothing is sorted.
        assert "TEMP B-TREE" not in plan, plan
    else:
        # One ordered index range per status; only their merge (5 x limit rows at most) is sorted.
        assert plan.count(f"SEARCH posts USING INDEX {index}") == len(PostStatus), plan
