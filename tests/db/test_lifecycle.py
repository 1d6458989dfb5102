"""chronogram.lifecycle on SQLite and PostgreSQL: each named transition writes its status and exactly one event, an
illegal one writes nothing, a repeated one (same dedupe key) is applied once, and observers hear every change
inside its transaction."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, Engine, func, select
from sqlmodel import Session

from chronogram import lifecycle
from chronogram.contracts import ErrorType, FinishInput
from chronogram.crypto import TokenCipher
from chronogram.enums import EventKind, PostStatus, PostType
from chronogram.lifecycle import DedupeKey, IllegalTransition, PostMissing, StatusChange, Transition
from chronogram.models import Post, PostEvent, table_of
from tests.support.factories import add_account, add_user, id_of

_POSTS = table_of(Post)
_EVENTS = table_of(PostEvent)
PUBLISH_AT = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def new_post(engine: Engine, cipher: TokenCipher) -> Iterator[int]:
    """A post scheduled through the lifecycle, as POST /v1/posts records it."""
    with Session(engine) as session:
        account = add_account(session, add_user(session), cipher)
        values = {
            "owner_id": account.owner_id,
            "account_id": id_of(account),
            "type": PostType.IMAGE,
            "publish_at": PUBLISH_AT,
            "user_tags": [],
        }
        scheduled = lifecycle.schedule(session.connection(), post=values)
        session.commit()
    yield scheduled.post_id


def _status(engine: Engine, post_id: int) -> PostStatus:
    with engine.connect() as connection:
        return PostStatus(
            connection.execute(select(_POSTS.c.status).where(_POSTS.c.id == post_id)).scalar_one()
        )


def _events(engine: Engine, post_id: int) -> list[tuple[PostStatus | None, PostStatus | None, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(_EVENTS.c.from_status, _EVENTS.c.to_status, _EVENTS.c.detail)
            .where(_EVENTS.c.post_id == post_id)
            .order_by(_EVENTS.c.id)
        ).all()
    return [(row[0], row[1], row[2]["message"]) for row in rows]


def _run(engine: Engine, step: str, post_id: int, key: str = "run-1:1") -> bool:
    key = f"{post_id}/{key}"  # PostgreSQL's database is shared by the run: keys unique per post
    with engine.begin() as connection:
        if step == "begin":
            return lifecycle.begin_publishing(
                connection, post_id=post_id, message="publish time reached", dedupe_key=key
            )
        if step == "publish":
            return lifecycle.publish(
                connection, post_id=post_id, dedupe_key=key, media_id=f"18{post_id:015d}", permalink=None
            )
        if step == "fail":
            return lifecycle.fail(
                connection,
                post_id=post_id,
                dedupe_key=key,
                error_code=ErrorType.GRAPH_AUTH,
                message="token expired",
            )
        if step == "cancel":
            return lifecycle.cancel(connection, post_id=post_id, dedupe_key=key, reason="not needed")
        if step == "retry":
            return lifecycle.retry(connection, post_id=post_id, publish_at=PUBLISH_AT + timedelta(days=1))
        if step == "restart":
            return lifecycle.restart(connection, post_id, key, reason="its run was terminated")
    raise AssertionError(step)


def test_the_status_graph_comes_from_the_named_transitions() -> None:
    assert lifecycle.STATUS_TRANSITIONS == {
        PostStatus.SCHEDULED: {
            PostStatus.PUBLISHING,
            PostStatus.CANCELLED,
            PostStatus.FAILED,
            PostStatus.SCHEDULED,
        },
        PostStatus.PUBLISHING: {
            PostStatus.PUBLISHED,
            PostStatus.FAILED,
            PostStatus.SCHEDULED,
            PostStatus.CANCELLED,
        },
        PostStatus.PUBLISHED: set(),
        PostStatus.FAILED: {PostStatus.SCHEDULED},
        PostStatus.CANCELLED: set(),
        PostStatus.DRAFT: {PostStatus.SCHEDULED},
    }
    assert lifecycle.TERMINAL_STATUSES == {PostStatus.PUBLISHED, PostStatus.CANCELLED}
    assert lifecycle.transition_to(PostStatus.FAILED) is Transition.FAIL


def _draft(engine: Engine, cipher: TokenCipher) -> int:
    with Session(engine) as session:
        account = add_account(session, add_user(session), cipher)
        values = {
            "owner_id": account.owner_id,
            "account_id": id_of(account),
            "type": PostType.IMAGE,
            "publish_at": PUBLISH_AT,
            "user_tags": [],
        }
        post_id = lifecycle.save_draft(session.connection(), post=values)
        session.commit()
    return post_id


def test_a_draft_is_scheduled_once_with_one_event(engine: Engine, cipher: TokenCipher) -> None:
    heard: list[StatusChange] = []
    stop = lifecycle.observe(lambda _connection, change: heard.append(change))
    try:
        post_id = _draft(engine, cipher)
        assert _status(engine, post_id) is PostStatus.DRAFT
        later = PUBLISH_AT + timedelta(hours=2)
        with engine.begin() as connection:
            scheduled = lifecycle.schedule_draft(connection, post_id=post_id, publish_at=later)
        assert scheduled is not None and scheduled.post_id == post_id
        with engine.begin() as connection:  # a repeated request: nothing more
            assert lifecycle.schedule_draft(connection, post_id=post_id, publish_at=later) is None
    finally:
        stop()
    assert _status(engine, post_id) is PostStatus.SCHEDULED
    assert _events(engine, post_id) == [
        (None, PostStatus.DRAFT, "saved as draft"),
        (PostStatus.DRAFT, PostStatus.SCHEDULED, "scheduled"),
    ]
    assert [(c.from_status, c.to_status) for c in heard] == [
        (None, PostStatus.DRAFT),
        (PostStatus.DRAFT, PostStatus.SCHEDULED),
    ]
    with engine.connect() as connection:
        intent = connection.execute(
            select(func.max(_EVENTS.c.id)).where(_EVENTS.c.post_id == post_id)
        ).scalar_one()
    assert scheduled.intent_id == intent


def test_only_a_draft_can_be_scheduled_as_one(engine: Engine, new_post: int) -> None:
    with pytest.raises(IllegalTransition), engine.begin() as connection:
        lifecycle.schedule_draft(connection, post_id=new_post, publish_at=PUBLISH_AT)
    assert _events(engine, new_post) == [(None, PostStatus.SCHEDULED, "created")]


def test_scheduling_records_the_created_event(engine: Engine, new_post: int) -> None:
    assert _status(engine, new_post) is PostStatus.SCHEDULED
    assert _events(engine, new_post) == [(None, PostStatus.SCHEDULED, "created")]


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (["begin", "publish"], PostStatus.PUBLISHED),
        (["begin", "fail"], PostStatus.FAILED),
        (["fail"], PostStatus.FAILED),
        (["cancel"], PostStatus.CANCELLED),
        (["begin", "fail", "retry"], PostStatus.SCHEDULED),
    ],
    ids=["published", "failed-publishing", "failed-scheduled", "cancelled", "retried"],
)
def test_each_transition_writes_its_status_and_one_event(
    engine: Engine, new_post: int, steps: list[str], expected: PostStatus
) -> None:
    for number, step in enumerate(steps, start=1):
        assert _run(engine, step, new_post, key=f"run-1:{number}") is True
    assert _status(engine, new_post) is expected
    events = _events(engine, new_post)
    assert len(events) == 1 + len(steps)
    assert events[-1][1] is expected


def test_a_failure_and_a_retry_keep_the_row_true(engine: Engine, new_post: int) -> None:
    _run(engine, "begin", new_post)
    _run(engine, "fail", new_post, key="run-1:2")
    with Session(engine) as session:
        post = session.get(Post, new_post)
        assert post is not None
        assert (post.error_code, post.error_message) == ("GraphAuthError", "token expired")
    _run(engine, "retry", new_post)
    with Session(engine) as session:
        post = session.get(Post, new_post)
        assert post is not None
        assert (post.status, post.error_code, post.publish_at) == (
            PostStatus.SCHEDULED,
            None,
            PUBLISH_AT + timedelta(days=1),
        )


@pytest.mark.parametrize(
    ("before", "illegal"),
    [
        (["cancel"], "begin"),
        (["begin", "publish"], "cancel"),
        (["begin", "publish"], "fail"),
        ([], "publish"),
        ([], "retry"),
        (["begin"], "cancel"),
    ],
)
def test_an_illegal_transition_raises_and_changes_nothing(
    engine: Engine, new_post: int, before: list[str], illegal: str
) -> None:
    for number, step in enumerate(before, start=1):
        _run(engine, step, new_post, key=f"run-1:{number}")
    status, events = _status(engine, new_post), _events(engine, new_post)
    with pytest.raises(IllegalTransition) as raised:
        _run(engine, illegal, new_post, key="run-2:1")
    assert raised.value.current is status and raised.value.post_id == new_post
    assert (_status(engine, new_post), _events(engine, new_post)) == (status, events)


def test_a_repeated_transition_is_applied_once(engine: Engine, new_post: int) -> None:
    assert _run(engine, "begin", new_post, key="run-1:1") is True
    assert _run(engine, "begin", new_post, key="run-1:1") is False  # the retry of an attempt that committed
    assert _run(engine, "publish", new_post, key="finish:run-1:published") is True
    assert _run(engine, "publish", new_post, key="finish:run-1:published") is False
    assert len(_events(engine, new_post)) == 3


def test_a_missing_post_is_reported(engine: Engine, new_post: int) -> None:
    with pytest.raises(PostMissing):
        _run(engine, "begin", new_post + 10_000)
    with engine.begin() as connection, pytest.raises(PostMissing):
        lifecycle.reschedule(
            connection,
            post_id=new_post + 10_000,
            publish_at=PUBLISH_AT,
            message="moved",
            dedupe_key=f"{new_post}/r:1",
        )


def test_observers_hear_every_transition_inside_its_transaction(engine: Engine, new_post: int) -> None:
    heard: list[StatusChange] = []

    def outbox(connection: Connection, change: StatusChange) -> None:
        heard.append(change)
        # What a notifications outbox would do: write in the same transaction as the change.
        lifecycle.record_event(
            connection,
            post_id=change.post_id,
            kind=EventKind.ATTEMPT,
            message=f"observed {change.transition.value}",
            dedupe_key=None,
        )

    unsubscribe = lifecycle.observe(outbox)
    try:
        _run(engine, "begin", new_post)
        with pytest.raises(RuntimeError), engine.begin() as connection:
            lifecycle.fail(
                connection, post_id=new_post, dedupe_key=f"{new_post}/k", error_code=None, message=None
            )
            raise RuntimeError("the caller's transaction fails after the transition")
    finally:
        unsubscribe()
    _run(engine, "publish", new_post, key="run-1:2")  # after unsubscribing: not heard

    assert [(c.transition, c.from_status, c.to_status) for c in heard] == [
        (Transition.BEGIN_PUBLISHING, PostStatus.SCHEDULED, PostStatus.PUBLISHING),
        (Transition.FAIL, PostStatus.PUBLISHING, PostStatus.FAILED),
    ]
    # The rolled-back failure left neither its status, its event nor what its observer wrote.
    assert _status(engine, new_post) is PostStatus.PUBLISHED
    messages = [message for _from, _to, message in _events(engine, new_post)]
    assert messages == ["created", "publish time reached", "observed begin_publishing", "published"]


def test_a_restart_hands_a_scheduled_or_publishing_post_to_a_fresh_run_once(
    engine: Engine, new_post: int
) -> None:
    assert _run(engine, "restart", new_post, key="dead-run-1")
    assert not _run(engine, "restart", new_post, key="dead-run-1")  # the same dead run: once
    assert _run(engine, "begin", new_post)
    assert _run(engine, "restart", new_post, key="dead-run-2")
    assert _status(engine, new_post) is PostStatus.SCHEDULED
    assert [(before, after) for before, after, _message in _events(engine, new_post)] == [
        (None, PostStatus.SCHEDULED),
        (PostStatus.SCHEDULED, PostStatus.SCHEDULED),
        (PostStatus.SCHEDULED, PostStatus.PUBLISHING),
        (PostStatus.PUBLISHING, PostStatus.SCHEDULED),
    ]
    assert _run(engine, "cancel", new_post, key="run-2:1")
    with pytest.raises(lifecycle.IllegalTransition):
        _run(engine, "restart", new_post, key="dead-run-3")  # a cancelled post stays cancelled


def test_dedupe_key_formats_are_stable() -> None:
    """Recorded histories and stored rows hold these: a change would record events twice."""
    assert DedupeKey.created(7) == "created:7"
    assert DedupeKey.workflow_started(7, "r") == "workflow-started:7:r"
    assert DedupeKey.run_event("r", 3) == "r:3"
    assert DedupeKey.run_ending("r", PostStatus.FAILED) == "finish:r:failed"
    assert DedupeKey.retry(7).startswith("retry:7:") and DedupeKey.retry(7) != DedupeKey.retry(7)
    assert DedupeKey.restart("r") == "restart:r"
    assert DedupeKey.cancel_requested("r") == "cancel-requested:r"


def test_records_without_a_status_change_are_idempotent_by_key(engine: Engine, new_post: int) -> None:
    with engine.begin() as connection:
        for _ in range(2):
            lifecycle.record_event(
                connection,
                post_id=new_post,
                kind=EventKind.ERROR,
                message="cancel refused: the post is already publishing",
                dedupe_key=f"{new_post}/run-1:5",
                error_code=None,
            )
        count = connection.execute(
            select(func.count()).select_from(_EVENTS).where(_EVENTS.c.dedupe_key == f"{new_post}/run-1:5")
        ).scalar_one()
    assert count == 1


def test_publish_calls_are_recorded_in_one_statement_and_missing_posts_named(
    engine: Engine, new_post: int
) -> None:
    with engine.begin() as connection:
        missing = lifecycle.record_publish_calls(
            connection, [(new_post, "run-1/1"), (new_post + 999, "run-2/1")]
        )
    assert missing == {new_post + 999}
    with engine.connect() as connection:
        stored = connection.execute(
            select(_POSTS.c.last_publish_call).where(_POSTS.c.id == new_post)
        ).scalar_one()
    assert stored == "run-1/1"
    with engine.begin() as connection:
        assert lifecycle.record_publish_calls(connection, []) == set()


def test_a_published_post_went_live_when_instagram_answered_not_when_it_was_marked(
    engine: Engine, new_post: int
) -> None:
    """The run ends published after its permalink and first comment (under a burst, a minute later): published_at
    is the answer's time it carries; without one (an outcome settled by reading the container), the marking's."""
    _run(engine, "begin", new_post)
    answered = datetime.now(UTC) - timedelta(seconds=42)
    ending = FinishInput(
        post_id=new_post, status=PostStatus.PUBLISHED, media_id="18000000000000123", published_at=answered
    )
    with engine.begin() as connection:
        assert lifecycle.end_run(connection, ending, f"{new_post}/run-1:published")
    with engine.connect() as connection:
        stored = connection.execute(select(_POSTS.c.published_at).where(_POSTS.c.id == new_post)).scalar_one()
    assert (stored if stored.tzinfo else stored.replace(tzinfo=UTC)) == answered


def test_a_post_published_without_the_answers_time_is_published_as_of_its_marking(
    engine: Engine, new_post: int
) -> None:
    _run(engine, "begin", new_post)
    before = datetime.now(UTC)
    _run(engine, "publish", new_post, key="run-1:2")
    with engine.connect() as connection:
        stored = connection.execute(select(_POSTS.c.published_at).where(_POSTS.c.id == new_post)).scalar_one()
    assert before <= (stored if stored.tzinfo else stored.replace(tzinfo=UTC)) <= datetime.now(UTC)
