"""Posting schedules: per account, weekly slots at wall-clock times in a time zone ("Mon-Fri 09:00 and 17:30,
Europe/Paris"), and the instants of the coming slots. Pure: the queue (api.use_cases.queue) decides which slots
are free.

A slot is a wall-clock time, so a 09:00 slot publishes at 09:00 local on both sides of a daylight-saving change;
slots in the spring-forward gap or the repeated hour follow chronogram.wall_clock's rule (02:30 on the night of
the gap is 03:30; in the repeated hour, the first 02:30, once). Two slots that land on the same instant that way
(02:30 and 03:30 on the night of the gap) are one slot.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import IntEnum

from chronogram.wall_clock import instant_of, local_of, zone_of

MAX_SLOTS_PER_WEEK = 100


class Weekday(IntEnum):
    """datetime.weekday()'s numbering."""

    MON = 0
    TUE = 1
    WED = 2
    THU = 3
    FRI = 4
    SAT = 5
    SUN = 6


@dataclass(frozen=True, order=True)
class WeeklySlot:
    weekday: Weekday
    at: time  # wall clock, to the minute


@dataclass(frozen=True)
class PostingSchedule:
    time_zone: str  # IANA name, checked with chronogram.wall_clock.zone_of
    slots: tuple[WeeklySlot, ...]


@dataclass(frozen=True)
class SlotTime:
    """One coming slot: its instant (UTC) and the wall-clock time it was made from."""

    at: datetime
    local: datetime


def upcoming_slots(schedule: PostingSchedule, *, after: datetime, until: datetime) -> Iterator[SlotTime]:
    """The schedule's slots strictly after ``after`` and at most ``until`` (aware instants), in time order."""
    zone = zone_of(schedule.time_zone)
    by_day: dict[int, list[time]] = {}
    for slot in sorted(set(schedule.slots)):
        by_day.setdefault(slot.weekday, []).append(slot.at)
    if not by_day:
        return
    # From the day before, local: a slot late on the previous local day may still be after ``after`` in UTC terms
    # only if the zone is behind; starting a day early costs nothing and misses nothing.
    day = local_of(after, zone).date() - timedelta(days=1)
    last_day = local_of(until, zone).date() + timedelta(days=1)
    previous: datetime | None = None
    while day <= last_day:
        for at in by_day.get(day.weekday(), ()):
            local = datetime.combine(day, at)
            instant = instant_of(local, zone)
            if instant <= after or instant > until or instant == previous:
                continue
            previous = instant
            yield SlotTime(at=instant, local=local)
        day += timedelta(days=1)


def parse_slot_time(text: str) -> time:
    """ "HH:MM" (00:00 to 23:59) as a wall-clock time; raises ValueError."""
    hours, sep, minutes = text.partition(":")
    if sep != ":" or len(hours) != 2 or len(minutes) != 2 or not (hours + minutes).isdigit():
        raise ValueError(f"{text!r} is not a time HH:MM")
    return time(int(hours), int(minutes))


def weekly_slots(days: Sequence[Weekday], times: Sequence[time]) -> tuple[WeeklySlot, ...]:
    return tuple(sorted({WeeklySlot(day, at) for day in days for at in times}))
