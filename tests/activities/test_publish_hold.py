"""The publish activity's hold: the workflow begins publishing ahead of publish_at, and media_publish waits for it,
heartbeating, so that a cancellation still stops it."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.testing import ActivityEnvironment

from activities import instagram


async def test_holds_until_the_publish_time() -> None:
    publish_at = datetime.now(UTC) + timedelta(seconds=0.4)
    await instagram._hold_until(publish_at)
    assert datetime.now(UTC) >= publish_at


async def test_a_past_or_missing_publish_time_does_not_hold() -> None:
    started = time.monotonic()
    await instagram._hold_until(None)
    await instagram._hold_until(datetime.now(UTC) - timedelta(hours=1))
    assert time.monotonic() - started < 0.05


async def test_the_hold_is_bounded_when_clocks_disagree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(instagram, "_LONGEST_HOLD", timedelta(seconds=0.2))
    started = time.monotonic()
    await instagram._hold_until(datetime.now(UTC) + timedelta(days=1))
    assert 0.15 <= time.monotonic() - started < 1.0


def test_a_hold_beats_on_a_schedule_that_ends_just_before_the_call() -> None:
    now = datetime(2026, 1, 1, 9, 0, 0, tzinfo=UTC)
    beats = instagram._hold_beats(now, now + timedelta(seconds=14))
    assert beats == [now + timedelta(seconds=s) for s in (6, 12, 13.5)]
    assert instagram._hold_beats(now, now + timedelta(seconds=12.5)) == [
        now + timedelta(seconds=s) for s in (6, 12)
    ]
    assert instagram._hold_beats(now, now + timedelta(seconds=0.4)) == []


def test_holds_begun_apart_beat_apart_until_their_last_call() -> None:
    instant = datetime(2026, 1, 1, 9, 0, 0, tzinfo=UTC)
    starts = [instant - timedelta(seconds=30) + timedelta(milliseconds=250 * rank) for rank in range(20)]
    beats = [instagram._hold_beats(start, instant) for start in starts]
    assert all(schedule[-1] == instant - timedelta(seconds=0.5) for schedule in beats)
    before_last = {beat for schedule in beats for beat in schedule[:-1]}
    assert len(before_last) == sum(len(schedule) - 1 for schedule in beats), "no two holds beat together"
    for start, schedule in zip(starts, beats, strict=True):
        gaps = [later - earlier for earlier, later in zip([start, *schedule], schedule, strict=False)]
        assert max(gaps) <= timedelta(seconds=6)


@instagram.keeps_heartbeat
async def _held(until: datetime) -> str:
    await instagram._hold_until(until)
    return "sent"


async def test_a_held_activity_heartbeats_and_a_cancellation_stops_it_before_the_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(instagram, "_HOLD_BEAT_EVERY", timedelta(seconds=0.2))
    env = ActivityEnvironment()
    beats: list[datetime] = []
    env.on_heartbeat = lambda *_details: beats.append(datetime.now(UTC))
    until = datetime.now(UTC) + timedelta(seconds=1.5)
    running = asyncio.ensure_future(env.run(_held, until))
    await asyncio.sleep(0.6)
    assert beats, "the hold heartbeats (the answer to a beat is how a cancellation reaches it)"
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert datetime.now(UTC) < until


async def test_a_held_activity_that_is_not_cancelled_goes_on_at_its_time() -> None:
    env = ActivityEnvironment()
    until = datetime.now(UTC) + timedelta(seconds=0.8)
    assert await env.run(_held, until) == "sent"
    assert datetime.now(UTC) >= until
