"""Recurring series' rules: occurrences at their local wall-clock time across daylight-saving changes, and the
rules that are refused (with the field and code the API reports)."""

from __future__ import annotations

import time as timer
from datetime import UTC, datetime, timedelta

import pytest

from chronogram.recurrence import RecurrenceRefused, checked, next_after, occurrences

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def test_weekly_occurrences_keep_their_local_time_across_dst() -> None:
    recurrence = checked(
        "RRULE:FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0",
        starts_at=datetime(2026, 3, 2, 9),
        time_zone="America/New_York",
        now=NOW,
    )
    found = list(occurrences(recurrence, after=NOW, until=NOW + timedelta(days=21)))
    assert [o.key for o in found] == ["2026-03-02T09:00", "2026-03-09T09:00", "2026-03-16T09:00"]
    # EST before 2026-03-08, EDT after.
    assert [o.at.hour for o in found] == [14, 13, 13]


def test_occurrence_in_the_gap_and_in_the_repeated_hour() -> None:
    gap = checked("FREQ=DAILY", starts_at=datetime(2026, 3, 28, 2, 30), time_zone="Europe/Paris", now=NOW)
    spring = list(
        occurrences(gap, after=datetime(2026, 3, 28, tzinfo=UTC), until=datetime(2026, 3, 30, 12, tzinfo=UTC))
    )
    assert [(o.key, o.at.strftime("%H:%M")) for o in spring] == [
        ("2026-03-28T02:30", "01:30"),
        ("2026-03-29T02:30", "01:30"),  # 03:30 CEST: 02:30 never showed
        ("2026-03-30T02:30", "00:30"),
    ]
    fold = checked("FREQ=DAILY", starts_at=datetime(2026, 10, 24, 2, 30), time_zone="Europe/Paris", now=NOW)
    autumn = list(
        occurrences(
            fold, after=datetime(2026, 10, 24, tzinfo=UTC), until=datetime(2026, 10, 26, 12, tzinfo=UTC)
        )
    )
    assert [o.at.strftime("%d %H:%M") for o in autumn] == ["24 00:30", "25 00:30", "26 01:30"]


def test_next_after_and_the_end_of_a_counted_rule() -> None:
    recurrence = checked("FREQ=DAILY;COUNT=3", starts_at=datetime(2026, 3, 2, 9), time_zone="UTC", now=NOW)
    first = next_after(recurrence, NOW)
    assert first is not None and first.key == "2026-03-02T09:00"
    assert next_after(recurrence, datetime(2026, 3, 4, 9, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    ("rule", "field", "code"),
    [
        ("FREQ=MINUTELY", "rule", "rrule_too_frequent"),
        ("FREQ=HOURLY;BYMINUTE=0,30", "rule", "rrule_too_frequent"),
        ("FREQ=DAILY;BYHOUR=9,9", "rule", None),  # a repeated value is one occurrence: accepted
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "rule", "rrule_never_occurs"),
        ("FREQ=MONTHLY;BYMONTH=4,6;BYMONTHDAY=31", "rule", "rrule_never_occurs"),
        ("FREQ=DAILY;UNTIL=20260201T000000", "rule", "rrule_never_occurs"),
        ("FREQ=DAILY;BYSETPOS=1", "rule", "rrule_part_not_supported"),
        ("FREQ=MONTHLY;BYDAY=5MO", "rule", "rrule_part_not_supported"),
        ("FREQ=DAILY\nRDATE:20260301T090000", "rule", "invalid_rrule"),
        ("DTSTART:20260301T090000", "rule", "invalid_rrule"),
        ("FREQ=DAILY;COUNT=0", "rule", "invalid_rrule"),
        ("FREQ=DAILY;BYHOUR=25", "rule", "invalid_rrule"),
        ("not a rule", "rule", "invalid_rrule"),
    ],
)
def test_refused_rules_name_the_field(rule: str, field: str, code: str | None) -> None:
    if code is None:
        checked(rule, starts_at=datetime(2026, 3, 2, 9), time_zone="UTC", now=NOW)
        return
    with pytest.raises(RecurrenceRefused) as refused:
        checked(rule, starts_at=datetime(2026, 3, 2, 9), time_zone="UTC", now=NOW)
    assert (refused.value.field, refused.value.code) == (field, code)


def test_unknown_zone_and_aware_start_are_refused() -> None:
    with pytest.raises(RecurrenceRefused) as zone:
        checked("FREQ=DAILY", starts_at=datetime(2026, 3, 2, 9), time_zone="Europe/Atlantis", now=NOW)
    assert zone.value.field == "time_zone"
    with pytest.raises(RecurrenceRefused) as start:
        checked("FREQ=DAILY", starts_at=datetime(2026, 3, 2, 9, tzinfo=UTC), time_zone="UTC", now=NOW)
    assert start.value.field == "starts_at"


def test_checking_a_rare_rule_is_bounded() -> None:
    # Monday 29 February: every 28 years at most (the next is in 2044); found quickly, not by walking to year 9999.
    began = timer.monotonic()
    recurrence = checked(
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO",
        starts_at=datetime(2026, 3, 2, 9),
        time_zone="UTC",
        now=NOW,
    )
    first = next_after(recurrence, NOW)
    assert first is not None and first.key == "2044-02-29T09:00"
    assert timer.monotonic() - began < 2.0
