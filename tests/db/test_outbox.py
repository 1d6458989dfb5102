"""The transactional outbox on SQLite and PostgreSQL: every change of a post writes exactly one event, numbered in
the post's sequence, in the change's own transaction (a rolled-back change leaves none, a repeated one adds none);
the dispatcher's fan-out makes one delivery per subscribed endpoint, once."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy import event as sqlalchemy_event
from sqlmodel import Session

from chronogram import accounts, lifecycle
from chronogram.contracts import ErrorType
from chronogram.crypto import TokenCipher
from chronogram.enums import (
    AccountEventKind,
    AccountStatusReason,
    DeliveryStatus,
    EventKind,
    NotificationType,
    PostType,
)
from chronogram.lifecycle import Note
from chronogram.models import NotificationDelivery, NotificationEvent, WebhookEndpoint, table_of
from chronogram.notifications import deliveries, outbox
from tests.support.db import NewDatabase, schema_engine
from tests.support.factories import add_account, add_user, id_of

_EVENTS = table_of(NotificationEvent)
TOKEN = "EAAB-secret-token-that-must-never-leak"


@pytest.fixture(autouse=True)
def installed() -> Iterator[None]:
    already = outbox.installed()
    outbox.install()
    yield
    if not already:
        outbox.uninstall()


@pytest.fixture
def post(engine: Engine, cipher: TokenCipher) -> tuple[int, int]:
    """A scheduled post and its owner."""
    with Session(engine) as session:
        owner = add_user(session)
        account = add_account(session, owner, cipher, token=TOKEN)
        values = {
            "owner_id": account.owner_id,
            "account_id": id_of(account),
            "type": PostType.IMAGE,
            "publish_at": datetime(2027, 3, 1, 9, 0, tzinfo=UTC),
            "user_tags": [],
        }
        scheduled = lifecycle.schedule(session.connection(), post=values)
        session.commit()
        return scheduled.post_id, id_of(owner)


def _events(engine: Engine, post_id: int) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(_EVENTS.c.payload).where(_EVENTS.c.post_id == post_id).order_by(_EVENTS.c.id)
        ).scalars()
        return list(rows)


def test_each_change_writes_one_event_in_sequence(engine: Engine, post: tuple[int, int]) -> None:
    post_id, _ = post
    with engine.begin() as connection:
        lifecycle.reschedule(
            connection, post_id, "r:1", publish_at=datetime(2027, 3, 2, tzinfo=UTC), message="rescheduled"
        )
    with engine.begin() as connection:
        lifecycle.begin_publishing(connection, post_id, "b:1", message="publishing")
    with engine.begin() as connection:
        assert lifecycle.fail(
            connection, post_id, "f:1", error_code=ErrorType.GRAPH_AUTH, message="token expired"
        )
    with engine.begin() as connection:  # a retried attempt: nothing new
        assert not lifecycle.fail(
            connection, post_id, "f:1", error_code=ErrorType.GRAPH_AUTH, message="again"
        )
    events = _events(engine, post_id)
    assert [e["type"] for e in events] == [
        "post.scheduled",
        "post.rescheduled",
        "post.publishing",
        "post.failed",
    ]
    assert [e["data"]["sequence"] for e in events] == [1, 2, 3, 4]
    assert events[1]["data"]["publish_at"] == "2027-03-02T00:00:00Z"
    failed = events[-1]["data"]
    assert failed["status"] == "failed" and failed["previous_status"] == "publishing"
    assert failed["error"]["code"] == "GraphAuthError" and failed["error"]["message"] == "token expired"
    assert f"/v1/posts/{post_id}/retry" in failed["error"]["what_to_do"]
    assert all(TOKEN not in str(e) for e in events)


def test_a_draft_is_heard_of_once_it_is_scheduled(engine: Engine, cipher: TokenCipher) -> None:
    with Session(engine) as session:
        account = add_account(session, add_user(session), cipher)
        values = {
            "owner_id": account.owner_id,
            "account_id": id_of(account),
            "type": PostType.IMAGE,
            "publish_at": datetime(2027, 3, 1, 9, 0, tzinfo=UTC),
            "user_tags": [],
        }
        post_id = lifecycle.save_draft(session.connection(), post=values)
        session.commit()
    assert _events(engine, post_id) == []
    with engine.begin() as connection:
        lifecycle.schedule_draft(connection, post_id=post_id, publish_at=datetime(2027, 3, 2, tzinfo=UTC))
    events = _events(engine, post_id)
    assert [(e["type"], e["data"]["previous_status"], e["data"]["sequence"]) for e in events] == [
        ("post.scheduled", "draft", 1)
    ]


def test_a_rolled_back_change_leaves_no_event(engine: Engine, post: tuple[int, int]) -> None:
    post_id, _ = post
    with engine.connect() as connection:
        transaction = connection.begin()
        lifecycle.cancel(connection, post_id, "c:1", reason="no")
        transaction.rollback()
    assert [e["type"] for e in _events(engine, post_id)] == ["post.scheduled"]


def test_a_first_comment_failure_is_an_event(engine: Engine, post: tuple[int, int]) -> None:
    post_id, _ = post
    with engine.begin() as connection:
        lifecycle.record_event(
            connection,
            post_id,
            "e:1",
            kind=EventKind.ERROR,
            message="first comment failed: nope",
            note=Note.FIRST_COMMENT_FAILED,
            error_code=ErrorType.GRAPH_INVALID_REQUEST,
        )
        lifecycle.record_event(
            connection, post_id, "e:2", kind=EventKind.ERROR, message="an error of no note"
        )
    events = _events(engine, post_id)
    assert [e["type"] for e in events] == ["post.scheduled", "post.first_comment_failed"]
    assert events[1]["data"]["error"]["code"] == "GraphInvalidRequestError"


def _note(connection: Any, post_id: int, note: Note, code: ErrorType, **detail: Any) -> None:
    lifecycle.record_event(
        connection,
        post_id,
        f"n:{uuid.uuid4().hex}",
        kind=EventKind.ATTEMPT if note is Note.RESUMED else EventKind.ERROR,
        message=f"{note.value} ({code.value})",
        note=note,
        error_code=code,
        detail=detail or None,
    )


def test_one_post_delayed_per_episode_and_the_next_event_says_it_resumed(
    engine: Engine, post: tuple[int, int]
) -> None:
    post_id, _ = post
    deadline = "2027-03-02T09:00:00+00:00"
    with engine.begin() as connection:  # an outage, then the token refused inside it: one episode
        _note(
            connection,
            post_id,
            Note.DELAYED,
            ErrorType.PUBLISH_DELAYED,
            delay_reason="service_unavailable",
            deadline=deadline,
        )
    with engine.begin() as connection:
        _note(connection, post_id, Note.DELAYED, ErrorType.GRAPH_AUTH, delay_reason="account_needs_reconnect")
    with engine.begin() as connection:
        _note(connection, post_id, Note.RESUMED, ErrorType.PUBLISH_RESUMED)
        _note(connection, post_id, Note.RESUMED, ErrorType.PUBLISH_RESUMED)
    with engine.begin() as connection:
        lifecycle.begin_publishing(connection, post_id, f"b:{uuid.uuid4().hex}", message="publishing")
    with engine.begin() as connection:  # a second episode, ended by a failure at its deadline
        _note(connection, post_id, Note.DELAYED, ErrorType.GRAPH_AUTH, delay_reason="account_needs_reconnect")
    with engine.begin() as connection:
        lifecycle.fail(
            connection,
            post_id,
            f"f:{uuid.uuid4().hex}",
            error_code=ErrorType.GRAPH_AUTH,
            message="not reconnected",
        )
    events = _events(engine, post_id)
    assert [e["type"] for e in events] == [
        "post.scheduled",
        "post.delayed",
        "post.publishing",
        "post.delayed",
        "post.failed",
    ]
    delayed = events[1]["data"]
    assert delayed["delay"]["reason"] == "service_unavailable" and delayed["delay"]["deadline"] == deadline
    assert delayed["error"]["code"] == "PublishDelayed" and "Nothing to do" in delayed["error"]["what_to_do"]
    assert delayed["resumed"] is None and delayed["status"] == "scheduled"
    resumed = events[2]["data"]["resumed"]
    assert resumed["delayed_since"] == delayed["delay"]["since"] and resumed["delayed_seconds"] >= 0
    assert events[2]["data"]["delay"] is None
    second = events[3]["data"]
    assert second["delay"]["reason"] == "account_needs_reconnect" and second["resumed"] is None
    assert "Reconnect the Instagram account" in second["error"]["what_to_do"]
    assert events[4]["data"]["resumed"] is None  # it never went on


def test_account_events_clients_hear_of(engine: Engine, cipher: TokenCipher) -> None:
    with Session(engine) as session:
        owner = add_user(session)
        account = add_account(session, owner, cipher, token=TOKEN)
        session.commit()
        account_id, owner_id = id_of(account), id_of(owner)
    now = datetime.now(UTC)
    refresh = f"refresh:{uuid.uuid4().hex}"
    with engine.begin() as connection:
        assert accounts.mark_needs_reconnect(
            connection, account_id, reason=AccountStatusReason.TOKEN_INVALID, detail="revoked", now=now
        )
        # Marked once: a second refusal changes nothing and tells nobody.
        assert not accounts.mark_needs_reconnect(
            connection, account_id, reason=AccountStatusReason.TOKEN_INVALID, detail="revoked", now=now
        )
    with engine.begin() as connection:
        accounts.replace_token(
            connection,
            account_id,
            token_ciphertext=cipher.encrypt("another-secret-token"),
            expires_at=now + timedelta(days=60),
            now=now,
            kind=AccountEventKind.TOKEN_REFRESHED,
            message="refreshed",
            dedupe_key=refresh,
        )
    with engine.begin() as connection:  # a retried refresh: nothing new
        assert not accounts.record_event(
            connection,
            account_id,
            kind=AccountEventKind.TOKEN_REFRESHED,
            message="again",
            now=now,
            dedupe_key=refresh,
        )
    with engine.connect() as connection:
        rows = connection.execute(
            select(_EVENTS.c.type, _EVENTS.c.payload)
            .where(_EVENTS.c.owner_id == owner_id, _EVENTS.c.post_id.is_(None))
            .order_by(_EVENTS.c.id)
        ).all()
    assert [str(row.type) for row in rows] == ["account.needs_reconnect", "account.token_refreshed"]
    needs, refreshed = (row.payload["data"] for row in rows)
    assert needs["account_id"] == account_id and needs["status"] == "needs_reconnect"
    assert needs["reason"] == "token_invalid" and needs["error"]["code"] == "token_invalid"
    assert refreshed["status"] == "active" and refreshed["token_expires_at"] and refreshed["error"] is None
    assert all(TOKEN not in str(row.payload) and "another-secret" not in str(row.payload) for row in rows)


def test_fan_out_delivers_each_event_once_to_each_subscribed_endpoint(
    engine: Engine, post: tuple[int, int], cipher: TokenCipher
) -> None:
    post_id, owner_id = post
    with Session(engine) as session:
        for types in (["post.cancelled"], ["post.scheduled", "post.cancelled"]):
            session.add(
                WebhookEndpoint(
                    owner_id=owner_id,
                    url="https://example.com/hook",
                    event_types=types,
                    secret_ciphertext=cipher.encrypt("whsec_x"),
                )
            )
        session.add(
            WebhookEndpoint(
                owner_id=owner_id,
                url="https://example.com/off",
                event_types=["post.scheduled"],
                enabled=False,
                secret_ciphertext=cipher.encrypt("whsec_x"),
            )
        )
        session.commit()
    with engine.begin() as connection:
        lifecycle.cancel(connection, post_id, "c:1", reason=None)
    made = deliveries.fan_out(engine, email=True)
    assert made.events >= 2 and len(made.endpoint_ids) == 2
    assert deliveries.fan_out(engine, email=True).events == 0
    deliveries_table, events_table = table_of(NotificationDelivery), _EVENTS
    with engine.connect() as connection:
        delivered = connection.execute(
            select(events_table.c.type)
            .join(deliveries_table, deliveries_table.c.event_id == events_table.c.id)
            .where(events_table.c.post_id == post_id, deliveries_table.c.channel == "webhook")
        ).scalars()
        found = sorted(delivered, key=str)
    assert found == [
        NotificationType.POST_CANCELLED,
        NotificationType.POST_CANCELLED,
        NotificationType.POST_SCHEDULED,
    ]


@pytest.mark.postgres
def test_two_dispatchers_at_once_deliver_each_event_once(
    new_pg_database: NewDatabase, cipher: TokenCipher
) -> None:
    """Both dispatchers read the same undispatched events before either claims them (held at a barrier just before
    the claim): the claim is conditional, so each event is returned to one of them and delivered once. A database
    of its own, so that the events are only this test's."""
    with schema_engine(new_pg_database()) as pg_engine:
        _two_dispatchers_at_once(pg_engine, cipher)


def _two_dispatchers_at_once(pg_engine: Engine, cipher: TokenCipher) -> None:
    with Session(pg_engine) as session:
        owner = add_user(session)
        account = add_account(session, owner, cipher, token=TOKEN)
        session.add(
            WebhookEndpoint(
                owner_id=id_of(owner),
                url="https://example.com/hook",
                event_types=["post.scheduled"],
                secret_ciphertext=cipher.encrypt("whsec_x"),
            )
        )
        post_ids = [
            lifecycle.schedule(
                session.connection(),
                post={
                    "owner_id": account.owner_id,
                    "account_id": id_of(account),
                    "type": PostType.IMAGE,
                    "publish_at": datetime(2027, 3, 1, 9, minute, tzinfo=UTC),
                    "user_tags": [],
                },
            ).post_id
            for minute in range(5)
        ]
        session.commit()
    barrier = threading.Barrier(2, timeout=10)

    def claim_together(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith(f"UPDATE {_EVENTS.name} "):
            barrier.wait()

    sqlalchemy_event.listen(pg_engine, "before_cursor_execute", claim_together)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            made = list(pool.map(lambda _: deliveries.fan_out(pg_engine, email=False), range(2)))
    finally:
        sqlalchemy_event.remove(pg_engine, "before_cursor_execute", claim_together)
    assert sum(fan.events for fan in made) == len(post_ids)  # each claimed by one or the other, none by both
    deliveries_table = table_of(NotificationDelivery)
    with pg_engine.connect() as connection:
        delivered = connection.execute(
            select(_EVENTS.c.post_id)
            .join(deliveries_table, deliveries_table.c.event_id == _EVENTS.c.id)
            .where(_EVENTS.c.post_id.in_(post_ids), deliveries_table.c.channel == "webhook")
        ).scalars()
        assert sorted(delivered) == sorted(post_ids)
        all_deliveries = connection.execute(select(deliveries_table.c.id)).scalars().all()
        assert len(all_deliveries) == len(post_ids)


def test_what_is_due_goes_one_event_per_post_and_waits_for_a_post_being_retried(
    engine: Engine, cipher: TokenCipher
) -> None:
    with Session(engine) as session:
        owner = add_user(session)
        account = add_account(session, owner, cipher, token=TOKEN)
        post_ids = []
        for hour in (9, 10):
            values = {
                "owner_id": account.owner_id,
                "account_id": id_of(account),
                "type": PostType.IMAGE,
                "publish_at": datetime(2027, 3, 1, hour, 0, tzinfo=UTC),
                "user_tags": [],
            }
            post_ids.append(lifecycle.schedule(session.connection(), post=values).post_id)
        endpoint = WebhookEndpoint(
            owner_id=id_of(owner),
            url="https://example.com/hook",
            event_types=["post.scheduled", "post.cancelled"],
            secret_ciphertext=cipher.encrypt("whsec_x"),
        )
        session.add(endpoint)
        session.commit()
        assert endpoint.id is not None
        endpoint_id = endpoint.id
    first, second = post_ids
    with engine.begin() as connection:
        lifecycle.cancel(connection, first, f"c:{uuid.uuid4().hex}", reason=None)
    deliveries.fan_out(engine, email=False)
    due = deliveries.due_deliveries(engine, endpoint_id, limit=10)
    assert [key for _, key in due] == [first, second, first]  # event order

    heads, more = deliveries.due_heads(engine, endpoint_id, busy_keys=[], limit=10)
    assert heads == due[:2] and more  # the first post's second event waits for its first
    assert deliveries.due_heads(engine, endpoint_id, busy_keys=[first], limit=10) == ([due[1]], False)
    assert deliveries.due_heads(engine, endpoint_id, busy_keys=[], limit=1) == ([due[0]], True)

    jobs = deliveries.webhook_jobs(engine, [d for d, _ in due], cipher)
    assert sorted(jobs) == sorted(d for d, _ in due) and all(j.occurred_at.tzinfo for j in jobs.values())
    deliveries.record_attempts(
        engine,
        [
            deliveries.Attempt(due[0][0], 200, 5, None, None, DeliveryStatus.DELIVERED),
            deliveries.Attempt(due[1][0], 503, 5, "answered HTTP 503", None, DeliveryStatus.PENDING),
        ],
    )
    # Delivered: no longer due, and nothing to send; the one that failed is due again, with the first post's next.
    assert due[0][0] not in deliveries.webhook_jobs(engine, [due[0][0]], cipher)
    assert deliveries.due_heads(engine, endpoint_id, busy_keys=[], limit=10) == ([due[1], due[2]], False)


def test_a_pump_takes_each_posts_oldest_never_tried_and_hands_over_what_nobody_retries(
    engine: Engine, cipher: TokenCipher
) -> None:
    with Session(engine) as session:
        owner = add_user(session)
        account = add_account(session, owner, cipher, token=TOKEN)
        post_ids = []
        for hour in (9, 10, 11):
            values = {
                "owner_id": account.owner_id,
                "account_id": id_of(account),
                "type": PostType.IMAGE,
                "publish_at": datetime(2027, 3, 1, hour, 0, tzinfo=UTC),
                "user_tags": [],
            }
            post_ids.append(lifecycle.schedule(session.connection(), post=values).post_id)
        endpoint = WebhookEndpoint(
            owner_id=id_of(owner),
            url="https://example.com/hook",
            event_types=["post.scheduled", "post.cancelled"],
            secret_ciphertext=cipher.encrypt("whsec_x"),
        )
        session.add(endpoint)
        session.commit()
        assert endpoint.id is not None
        endpoint_id = endpoint.id
    first, second, third = post_ids
    with engine.begin() as connection:
        lifecycle.cancel(connection, first, f"c:{uuid.uuid4().hex}", reason=None)
    deliveries.fan_out(engine, email=False)
    due = deliveries.due_deliveries(engine, endpoint_id, limit=10)
    assert [key for _, key in due] == [first, second, third, first]

    def look(out_keys: set[int], retrying: set[int], limit: int = 10) -> deliveries.PumpHeads:
        return deliveries.pump_heads(
            engine, endpoint_id, out_keys=out_keys, retrying_ids=retrying, limit=limit
        )

    assert look(set(), set()) == deliveries.PumpHeads(heads=due[:3], orphans=[])
    # A post with a delivery out: none of its events; the limit counts what is taken.
    assert look({second}, set()).heads == [due[0], due[2]]
    assert look(set(), set(), limit=1).heads == [due[0]]
    # The first post's first event failed once: it is retried (by the workflow), and holds the post's next one.
    deliveries.record_attempts(
        engine, [deliveries.Attempt(due[0][0], 503, 5, "answered HTTP 503", None, DeliveryStatus.PENDING)]
    )
    assert look(set(), {due[0][0]}) == deliveries.PumpHeads(heads=due[1:3], orphans=[])
    # Nobody retries it (its pump was lost before it said so): an orphan, handed over, its post still held.
    assert look(set(), set()) == deliveries.PumpHeads(heads=due[1:3], orphans=[due[0]])
    # Delivered at last: the post's next event may go.
    deliveries.record_attempts(
        engine, [deliveries.Attempt(due[0][0], 200, 5, None, None, DeliveryStatus.DELIVERED)]
    )
    assert look(set(), set()).heads == [due[1], due[2], due[3]]
