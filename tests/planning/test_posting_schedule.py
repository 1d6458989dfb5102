"""Queue slots are wall-clock times: across daylight-saving changes in Europe/Paris and America/New_York, in the
spring-forward gap and in the repeated hour (chronogram.wall_clock's rule)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from chronogram.posting_schedule import PostingSchedule, Weekday, upcoming_slots, weekly_slots
from chronogram.wall_clock import UnknownTimeZone, zone_of

WEEKDAYS = [Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU, Weekday.FRI]
EVERY_DAY = list(Weekday)


def _slots(zone: str, days: list[Weekday], *times: time, after: datetime, days_ahead: int) -> list[datetime]:
    schedule = PostingSchedule(time_zone=zone, slots=weekly_slots(days, list(times)))
    return [
        slot.at for slot in upcoming_slots(schedule, after=after, until=after + timedelta(days=days_ahead))
    ]


def _local(instants: list[datetime], zone: str) -> list[str]:
    return [at.astimezone(zone_of(zone)).strftime("%a %Y-%m-%d %H:%M %z") for at in instants]


def test_paris_nine_oclock_stays_nine_across_spring_forward() -> None:
    # Paris moves from +01:00 to +02:00 on Sunday 2026-03-29.
    slots = _slots(
        "Europe/Paris", WEEKDAYS, time(9), time(17, 30), after=datetime(2026, 3, 26, tzinfo=UTC), days_ahead=6
    )
    assert _local(slots, "Europe/Paris") == [
        "Thu 2026-03-26 09:00 +0100",
        "Thu 2026-03-26 17:30 +0100",
        "Fri 2026-03-27 09:00 +0100",
        "Fri 2026-03-27 17:30 +0100",
        "Mon 2026-03-30 09:00 +0200",
        "Mon 2026-03-30 17:30 +0200",
        "Tue 2026-03-31 09:00 +0200",
        "Tue 2026-03-31 17:30 +0200",
    ]
    # In UTC the slot moved by the hour the clocks did.
    assert slots[0].hour == 8 and slots[4].hour == 7


def test_new_york_nine_oclock_stays_nine_across_fall_back() -> None:
    # New York moves from -04:00 to -05:00 on Sunday 2026-11-01.
    slots = _slots(
        "America/New_York", EVERY_DAY, time(9), after=datetime(2026, 10, 31, tzinfo=UTC), days_ahead=3
    )
    assert _local(slots, "America/New_York") == [
        "Sat 2026-10-31 09:00 -0400",
        "Sun 2026-11-01 09:00 -0500",
        "Mon 2026-11-02 09:00 -0500",
    ]
    assert [at.hour for at in slots] == [13, 14, 14]


def test_slot_in_the_spring_forward_gap_moves_forward_by_the_gap() -> None:
    # 02:30 does not exist in Paris on 2026-03-29 (02:00 -> 03:00): the slot is 03:30 local that night, and a
    # 03:30 slot the same night is the same slot, once.
    slots = _slots(
        "Europe/Paris",
        EVERY_DAY,
        time(2, 30),
        time(3, 30),
        after=datetime(2026, 3, 28, 12, tzinfo=UTC),
        days_ahead=2,
    )
    assert _local(slots, "Europe/Paris") == [
        "Sun 2026-03-29 03:30 +0200",
        "Mon 2026-03-30 02:30 +0200",
        "Mon 2026-03-30 03:30 +0200",
    ]
    ny = _slots(
        "America/New_York", EVERY_DAY, time(2, 15), after=datetime(2026, 3, 7, 12, tzinfo=UTC), days_ahead=2
    )
    assert _local(ny, "America/New_York") == ["Sun 2026-03-08 03:15 -0400", "Mon 2026-03-09 02:15 -0400"]


def test_slot_in_the_repeated_hour_is_the_first_one_once() -> None:
    # 02:30 shows twice in Paris on 2026-10-25 (03:00 -> 02:00): the first one, on summer time, once.
    slots = _slots(
        "Europe/Paris", EVERY_DAY, time(2, 30), after=datetime(2026, 10, 24, 12, tzinfo=UTC), days_ahead=2
    )
    assert _local(slots, "Europe/Paris") == ["Sun 2026-10-25 02:30 +0200", "Mon 2026-10-26 02:30 +0100"]
    ny = _slots(
        "America/New_York", EVERY_DAY, time(1, 30), after=datetime(2026, 10, 31, 12, tzinfo=UTC), days_ahead=1
    )
    assert _local(ny, "America/New_York") == ["Sun 2026-11-01 01:30 -0400"]


def test_slots_are_strictly_after_the_start_and_within_the_end() -> None:
    start = datetime(2026, 3, 2, 8, tzinfo=UTC)  # Monday 09:00 in Paris, exactly
    slots = _slots("Europe/Paris", [Weekday.MON], time(9), after=start, days_ahead=14)
    assert slots == [datetime(2026, 3, 9, 8, tzinfo=UTC), datetime(2026, 3, 16, 8, tzinfo=UTC)]


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../etc/passwd", "/etc/localtime", " Europe/Paris"])
def test_unknown_zones_are_refused(name: str) -> None:
    with pytest.raises(UnknownTimeZone):
        zone_of(name)
