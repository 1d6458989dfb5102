"""The status transitions at publish time and their audit events, on a real SQLite database: each commits once,
a retry of an attempt that committed changes nothing, and a deleted post is a non-retryable PostNotFound."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import UTC, datetime, timedelta

import pytest
from minio import Minio
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.store import PostStore
from chronogram.contracts import ErrorType, EventRecord, FinishInput, PostRef
from chronogram.crypto import TokenCipher
from chronogram.enums import EventKind, PostStatus, PostType
from chronogram.models import Post, PostEvent
from chronogram.observability.logs import ContextFilter, log_outcome
from chronogram.observability.metrics import install_transition_metrics
from tests.support.factories import PostSeed, Seeder


@pytest.fixture
def post_id(sqlite_engine: Engine, cipher: TokenCipher) -> int:
    # Posts without media: object storage is never reached.
    seeder = Seeder(sqlite_engine, Minio("127.0.0.1:9", secure=False), "unused", cipher)
    account_id = seeder.account(ig_user_id="17841400000000077", username="store_shop", token="EAAB-test")
    return seeder.post(account_id, PostSeed(PostType.IMAGE, [], datetime.now(UTC) + timedelta(hours=1)))


def _post(engine: Engine, post_id: int) -> Post:
    with Session(engine) as session:
        post = session.get(Post, post_id)
        assert post is not None
        return post


def _events(engine: Engine, post_id: int) -> list[PostEvent]:
    with Session(engine) as session:
        return list(
            session.exec(select(PostEvent).where(PostEvent.post_id == post_id).order_by(col(PostEvent.id)))
        )


def _begin(post_id: int, key: str = "run-1:1") -> EventRecord:
    return EventRecord(
        post_id=post_id,
        kind=EventKind.TRANSITION,
        message="publish time reached",
        dedupe_key=key,
        status_from=PostStatus.SCHEDULED,
        status_to=PostStatus.PUBLISHING,
    )


def test_begin_publishing_moves_a_scheduled_post_once(sqlite_engine: Engine, post_id: int) -> None:
    store = PostStore(sqlite_engine)
    store.begin_publishing(_begin(post_id))
    store.begin_publishing(_begin(post_id))  # the retry of an attempt that committed

    assert _post(sqlite_engine, post_id).status is PostStatus.PUBLISHING
    [event] = _events(sqlite_engine, post_id)
    assert (event.kind, event.from_status, event.to_status) == (
        EventKind.TRANSITION,
        PostStatus.SCHEDULED,
        PostStatus.PUBLISHING,
    )
    assert event.detail == {"message": "publish time reached"} and event.dedupe_key == "run-1:1"


async def test_finish_records_the_publication_and_its_event_once(sqlite_engine: Engine, post_id: int) -> None:
    store = PostStore(sqlite_engine)
    store.begin_publishing(_begin(post_id))
    published = FinishInput(
        post_id=post_id,
        status=PostStatus.PUBLISHED,
        media_id="18000000000000009",
        permalink="https://ig.test/p/x/",
    )
    environment = ActivityEnvironment()
    await environment.run(store.finish, published)
    await environment.run(store.finish, published)

    post = _post(sqlite_engine, post_id)
    assert post.status is PostStatus.PUBLISHED and post.published_at is not None
    assert (post.ig_media_id, post.permalink, post.error_code) == (
        "18000000000000009",
        "https://ig.test/p/x/",
        None,
    )
    transitions = [(event.from_status, event.to_status) for event in _events(sqlite_engine, post_id)]
    assert transitions == [
        (PostStatus.SCHEDULED, PostStatus.PUBLISHING),
        (PostStatus.PUBLISHING, PostStatus.PUBLISHED),
    ]


async def test_finish_keeps_a_stored_media_id_it_was_not_given(sqlite_engine: Engine, post_id: int) -> None:
    store = PostStore(sqlite_engine)
    store.begin_publishing(_begin(post_id))  # published only from publishing (chronogram.lifecycle)
    with Session(sqlite_engine) as session:
        post = _post(sqlite_engine, post_id)
        post.ig_media_id = "18000000000000010"  # stored by the publish activity itself
        session.add(post)
        session.commit()
    await ActivityEnvironment().run(store.finish, FinishInput(post_id=post_id, status=PostStatus.PUBLISHED))
    assert _post(sqlite_engine, post_id).ig_media_id == "18000000000000010"


async def test_a_failure_carries_its_error(sqlite_engine: Engine, post_id: int) -> None:
    store = PostStore(sqlite_engine)
    failed = FinishInput(
        post_id=post_id,
        status=PostStatus.FAILED,
        error_code=ErrorType.MEDIA_REJECTED,
        error_message="too small",
    )
    await ActivityEnvironment().run(store.finish, failed)

    post = _post(sqlite_engine, post_id)
    assert (post.status, post.error_code, post.error_message) == (
        PostStatus.FAILED,
        "MediaRejected",
        "too small",
    )
    [event] = _events(sqlite_engine, post_id)
    assert (event.to_status, event.error_code, event.detail) == (
        PostStatus.FAILED,
        "MediaRejected",
        {"message": "too small"},
    )
    assert event.dedupe_key == f"finish:{ActivityEnvironment().info.workflow_run_id}:failed"


async def test_a_deleted_post_is_not_found_and_not_retried(sqlite_engine: Engine, post_id: int) -> None:
    store = PostStore(sqlite_engine)
    with pytest.raises(ApplicationError) as began:
        store.begin_publishing(dataclasses.replace(_begin(post_id), post_id=post_id + 1000))
    with pytest.raises(ApplicationError) as finished:
        await ActivityEnvironment().run(
            store.finish, FinishInput(post_id=post_id + 1000, status=PostStatus.PUBLISHED)
        )
    for raised in (began, finished):
        assert raised.value.type == ErrorType.POST_NOT_FOUND and raised.value.non_retryable


def test_the_plan_counts_the_posts_due_together_and_those_created_before(
    sqlite_engine: Engine, cipher: TokenCipher
) -> None:
    """A burst's rank (due_before) is the open posts due within a second of it with a smaller id: known as soon as
    the post exists, whenever its plan is read, so the burst's wake-ups spread evenly."""
    seeder = Seeder(sqlite_engine, Minio("127.0.0.1:9", secure=False), "unused", cipher)
    account_id = seeder.account(ig_user_id="17841400000000078", username="burst_shop", token="EAAB-test")
    instant = datetime(2031, 3, 4, 9, 0, tzinfo=UTC)

    def post(at: datetime) -> int:
        return seeder.post(account_id, PostSeed(PostType.IMAGE, [], at))

    first = post(instant)
    post(instant + timedelta(seconds=5))  # another second: not counted
    cancelled = post(instant)  # not open: not counted
    with Session(sqlite_engine) as session:
        row = session.get(Post, cancelled)
        assert row is not None
        row.status = PostStatus.CANCELLED
        session.add(row)
        session.commit()
    second = post(instant + timedelta(milliseconds=500))
    third = post(instant)
    store = PostStore(sqlite_engine, wake_spacing_ms=60, wake_lead_max_seconds=75)
    plans = {post_id: store.load_plan(PostRef(post_id)) for post_id in (third, first, second)}
    assert {post_id: (plan.due_together, plan.due_before) for post_id, plan in plans.items()} == {
        first: (3, 0),
        second: (3, 1),
        third: (3, 2),
    }
    # The burst's pace, a worker setting, travels in the plan: the workflow's lead is the same on replay.
    assert {(plan.wake_spacing_ms, plan.wake_lead_max_seconds) for plan in plans.values()} == {(60, 75)}


async def test_endings_at_once_commit_together_and_a_refused_one_fails_only_its_own(
    sqlite_engine: Engine, cipher: TokenCipher
) -> None:
    """A burst's runs end within moments of each other: their endings go in one transaction or a few, each post
    gets its one event, and an ending the lifecycle refuses (a post deleted meanwhile, one never publishing) is
    refused to its own activity only."""
    seeder = Seeder(sqlite_engine, Minio("127.0.0.1:9", secure=False), "unused", cipher)
    account_id = seeder.account(ig_user_id="17841400000000078", username="burst_shop", token="EAAB-test")
    at = datetime.now(UTC) + timedelta(hours=1)
    post_ids = [seeder.post(account_id, PostSeed(PostType.IMAGE, [], at)) for _ in range(30)]
    never_began = seeder.post(account_id, PostSeed(PostType.IMAGE, [], at))
    store = PostStore(sqlite_engine)
    for post_id in post_ids:
        store.begin_publishing(_begin(post_id, key=f"run-{post_id}:1"))

    endings = [FinishInput(post_id=post_id, status=PostStatus.PUBLISHED) for post_id in post_ids]
    refused = [
        FinishInput(post_id=max(post_ids) + 1000, status=PostStatus.PUBLISHED),
        FinishInput(post_id=never_began, status=PostStatus.PUBLISHED),
    ]

    def of_its_own_run(ending: FinishInput) -> ActivityEnvironment:
        environment = ActivityEnvironment()
        environment.info = dataclasses.replace(environment.info, workflow_run_id=f"run-{ending.post_id}")
        return environment

    outcomes = await asyncio.gather(
        *(of_its_own_run(ending).run(store.finish, ending) for ending in [*endings, *refused]),
        return_exceptions=True,
    )

    assert outcomes[: len(endings)] == [None] * len(endings)
    missing, illegal = outcomes[len(endings) :]
    assert isinstance(missing, ApplicationError) and missing.type == ErrorType.POST_NOT_FOUND
    assert isinstance(illegal, ApplicationError) and illegal.type == ErrorType.ILLEGAL_TRANSITION
    for post_id in post_ids:
        assert _post(sqlite_engine, post_id).status is PostStatus.PUBLISHED
        assert [event.to_status for event in _events(sqlite_engine, post_id)] == [
            PostStatus.PUBLISHING,
            PostStatus.PUBLISHED,
        ]
    assert _post(sqlite_engine, never_began).status is PostStatus.SCHEDULED
    assert _events(sqlite_engine, never_began) == []


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.addFilter(ContextFilter())
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_each_endings_outcome_line_names_its_own_workflow_and_run(
    sqlite_engine: Engine, cipher: TokenCipher
) -> None:
    """The endings are committed together on another thread; each outcome's log line still carries the workflow
    and run of the activity that ended it (operators find a post's run from its line)."""
    install_transition_metrics(log_outcome)
    seeder = Seeder(sqlite_engine, Minio("127.0.0.1:9", secure=False), "unused", cipher)
    account_id = seeder.account(ig_user_id="17841400000000079", username="lines_shop", token="EAAB-test")
    at = datetime.now(UTC) + timedelta(hours=1)
    post_ids = [seeder.post(account_id, PostSeed(PostType.IMAGE, [], at)) for _ in range(5)]
    store = PostStore(sqlite_engine)
    for post_id in post_ids:
        store.begin_publishing(_begin(post_id, key=f"run-{post_id}:1"))

    def of_its_own_run(post_id: int) -> ActivityEnvironment:
        environment = ActivityEnvironment()
        environment.info = dataclasses.replace(
            environment.info, workflow_id=f"post-{post_id}", workflow_run_id=f"run-{post_id}"
        )
        return environment

    lines = _Lines()
    logger = logging.getLogger("chronogram.outcomes")
    level = logger.level
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    try:
        await asyncio.gather(
            *(
                of_its_own_run(post_id).run(
                    store.finish, FinishInput(post_id=post_id, status=PostStatus.PUBLISHED)
                )
                for post_id in post_ids
            )
        )
    finally:
        logger.removeHandler(lines)
        logger.setLevel(level)
    named = {
        (
            getattr(record, "post_id", None),
            getattr(record, "workflow_id", None),
            getattr(record, "run_id", None),
        )
        for record in lines.records
    }
    assert named == {(post_id, f"post-{post_id}", f"run-{post_id}") for post_id in post_ids}
