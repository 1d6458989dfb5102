"""When a published post's PostMetricsWorkflow takes its first task (activities.metrics.first_task_delay)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from activities.metrics import first_task_delay

PUBLISHED_AT = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def test_a_start_at_publish_delays_the_first_task_until_a_minute_before_the_first_reading() -> None:
    assert first_task_delay(PUBLISHED_AT, PUBLISHED_AT + timedelta(seconds=2)) == timedelta(
        minutes=58, seconds=58
    )


def test_a_start_within_the_last_minute_before_the_first_reading_is_not_delayed() -> None:
    assert first_task_delay(PUBLISHED_AT, PUBLISHED_AT + timedelta(minutes=59, seconds=30)) == timedelta(0)


def test_a_start_after_the_first_reading_was_due_is_not_delayed() -> None:
    assert first_task_delay(PUBLISHED_AT, PUBLISHED_AT + timedelta(hours=3)) == timedelta(0)
