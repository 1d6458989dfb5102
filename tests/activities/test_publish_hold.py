"""The publish activity's hold: the workflow wakes a few seconds early, and media_publish waits for publish_at."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

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
