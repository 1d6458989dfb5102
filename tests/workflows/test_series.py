"""SeriesWorkflow on the time-skipping test server: a weekly series in Europe/Paris whose three occurrences straddle
the spring daylight-saving change, created as posts by the real SeriesActivities on a real SQLite database and
published by their own ScheduledPostWorkflows (whose activities follow tests/support/fakes.py), each at 09:00 on
the Paris clock. Its history is kept for tests/replay (CHRONOGRAM_RECORD_SERIES_HISTORY=1)."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlmodel import Session, col, select
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.series import SeriesActivities
from chronogram.contracts import SERIES_HORIZON_DAYS, OccurrencesInput, post_workflow_id
from chronogram.crypto import TokenCipher
from chronogram.enums import PostStatus, PostType, SeriesStatus
from chronogram.models import Post, PostEvent, Series, SeriesOccurrence
from chronogram.scheduling import start_series_workflow
from chronogram.temporal import DATA_CONVERTER
from tests.support.factories import add_account, add_image, add_user, id_of
from tests.support.fakes import FakeWorld
from tests.support.publishing import wait_for_status
from workflows import ScheduledPostWorkflow, SeriesWorkflow

PARIS = ZoneInfo("Europe/Paris")
RECORD_TO = Path(__file__).parents[1] / "replay" / "series_histories" / "weekly_three_occurrences.json"


def _monday_before_spring_change(after: datetime) -> date:
    """The Monday six days before the next last Sunday of March in Paris (its change to summer time)."""
    year = after.year if after < datetime(after.year, 3, 1, tzinfo=UTC) else after.year + 1
    last_sunday = max(date(year, 3, day) for day in range(25, 32) if date(year, 3, day).weekday() == 6)
    return last_sunday - timedelta(days=6)


def _add_series(engine: Engine, starts_at: date) -> tuple[int, int]:
    cipher = TokenCipher([TokenCipher.generate_key()])
    with Session(engine) as session:
        owner = add_user(session)
        account = add_account(session, owner, cipher)
        media = add_image(session, owner)
        series = Series(
            owner_id=id_of(owner),
            account_id=id_of(account),
            type=PostType.IMAGE,
            media_ids=[id_of(media)],
            caption="Monday bread #bakery",
            rule="FREQ=WEEKLY;BYDAY=MO;COUNT=3",
            starts_at=f"{starts_at.isoformat()}T09:00",
            time_zone="Europe/Paris",
        )
        session.add(series)
        session.commit()
        assert series.id is not None
        return series.id, series.account_id


async def test_weekly_series_publishes_three_occurrences_at_nine_paris_time(
    time_skipping_env: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    env = time_skipping_env
    now = await env.get_current_time()
    # Beyond the horizon, whatever the shared server's clock reads by now (earlier tests skip it by years): the
    # first look creates nothing, then each occurrence enters the horizon in a round of its own.
    first_monday = _monday_before_spring_change(now + timedelta(days=2 * SERIES_HORIZON_DAYS))
    series_id, account_id = _add_series(sqlite_engine, first_monday)
    world = FakeWorld()
    task_queue = f"series-{uuid.uuid4()}"
    series_activities = SeriesActivities(sqlite_engine, env.client, task_queue=task_queue)
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[SeriesWorkflow, ScheduledPostWorkflow],
        activities=[*world.activities(), series_activities.create_occurrences],
    ):
        handle = await start_series_workflow(
            env.client, series_id=series_id, account_id=account_id, task_queue=task_queue
        )
        # Months of skipped time: the workflow sleeps until each occurrence is 30 days ahead, creates its post,
        # and ends once the rule (COUNT=3) has nothing left.
        result = await handle.result()
        assert result.rounds >= 4  # the first look, then one round per occurrence entering the horizon

        with Session(sqlite_engine) as session:
            rows = session.exec(
                select(SeriesOccurrence)
                .where(SeriesOccurrence.series_id == series_id)
                .order_by(col(SeriesOccurrence.occurrence_key))
            ).all()
            keys = [row.occurrence_key for row in rows]
            post_ids = [row.post_id for row in rows if row.post_id is not None]
        mondays = [first_monday + timedelta(days=7 * week) for week in range(3)]
        assert keys == [f"{monday.isoformat()}T09:00" for monday in mondays]
        assert len(post_ids) == 3

        # The posts' workflows sleep until their times: skip past the last one. The last may still be finishing
        # its final tasks when the clock gets there, on the real clock: it is given a moment.
        last = datetime.combine(mondays[-1], datetime.min.time().replace(hour=9), tzinfo=PARIS)
        await env.sleep(last + timedelta(hours=1) - await env.get_current_time())
        for post_id in post_ids:
            post_handle = env.client.get_workflow_handle(post_workflow_id(post_id))
            await wait_for_status(post_handle, WorkflowExecutionStatus.COMPLETED)

    publishes = {call.arg.post_id: call for call in world.called("publish")}
    assert sorted(publishes) == sorted(post_ids)
    local_times = []
    for post_id in post_ids:
        assert post_id is not None
        call = publishes[post_id]
        assert call.arg.not_before is not None
        local = call.arg.not_before.astimezone(PARIS)
        local_times.append(local.strftime("%a %H:%M %z"))
        # Published (by the fake Graph API) on the server's skipped clock at that time, within the workflow's slack.
        assert abs(call.at - call.arg.not_before) <= timedelta(seconds=10)
    # 09:00 on the Paris clock every Monday: winter time, then summer time after the change.
    assert local_times == ["Mon 09:00 +0100", "Mon 09:00 +0200", "Mon 09:00 +0200"]

    with Session(sqlite_engine) as session:
        posts = session.exec(
            select(Post).where(col(Post.id).in_(post_ids)).order_by(col(Post.publish_at))
        ).all()
        assert [post.status for post in posts] == [PostStatus.SCHEDULED] * 3  # the fakes record nothing
        created = session.exec(
            select(PostEvent).where(
                col(PostEvent.post_id).in_(post_ids), PostEvent.to_status == PostStatus.SCHEDULED
            )
        ).all()
        assert len(created) == 3  # exactly one "created" event each, through the lifecycle
        series = session.get(Series, series_id)
        assert series is not None and series.status is SeriesStatus.ACTIVE

    history = await handle.fetch_history()
    await Replayer(workflows=[SeriesWorkflow], data_converter=DATA_CONVERTER).replay_workflow(history)
    if os.environ.get("CHRONOGRAM_RECORD_SERIES_HISTORY"):
        RECORD_TO.parent.mkdir(exist_ok=True)
        RECORD_TO.write_text(json.dumps(json.loads(history.to_json()), indent=1, sort_keys=True) + "\n")


async def test_a_crashed_round_never_creates_an_occurrence_twice(
    time_skipping_env: WorkflowEnvironment, sqlite_engine: Engine
) -> None:
    """The activity run twice for the same instant (a retry after a crash past its commits) creates nothing new."""
    env = time_skipping_env
    now = await env.get_current_time()
    first_monday = _monday_before_spring_change(now)
    series_id, _ = _add_series(sqlite_engine, first_monday)
    activities = SeriesActivities(sqlite_engine, env.client, task_queue=f"unused-{uuid.uuid4()}")
    at = datetime.combine(first_monday, datetime.min.time(), tzinfo=UTC) - timedelta(days=10)
    first = activities._create(OccurrencesInput(series_id=series_id, now=at))
    again = activities._create(OccurrencesInput(series_id=series_id, now=at))
    assert len(first.created) == 3 and again.created == []
    assert sorted(start.post_id for start in again.starts) == sorted(first.created)
    assert first.ended and again.ended


def test_an_occurrence_recorded_after_a_cancellation_is_rolled_back(sqlite_engine: Engine) -> None:
    """The series is read again inside each occurrence's transaction: a cancellation that committed after the
    round read the series leaves no post behind (on PostgreSQL the read is FOR UPDATE, so a later one waits)."""
    from activities.series import _record
    from chronogram.recurrence import Occurrence

    series_id, _ = _add_series(sqlite_engine, date(2030, 1, 7))
    with Session(sqlite_engine, expire_on_commit=False) as session:
        series = session.get(Series, series_id)
        assert series is not None
        session.expunge(series)
    with Session(sqlite_engine) as session:
        stored = session.get(Series, series_id)
        assert stored is not None
        stored.status = SeriesStatus.CANCELLED
        session.add(stored)
        session.commit()
    occurrence = Occurrence(local=datetime(2030, 1, 7, 9), at=datetime(2030, 1, 7, 8, tzinfo=UTC))
    with sqlite_engine.connect() as connection:
        assert _record(connection, series, occurrence, []) is None
    with Session(sqlite_engine) as session:
        assert session.exec(select(Post)).all() == []
        assert session.exec(select(SeriesOccurrence)).all() == []
