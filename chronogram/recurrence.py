"""Recurring series' rules: an RFC 5545 RRULE (python-dateutil's rrule) read in wall-clock time from a local start,
and the instants of its occurrences. Pure.

The rule runs on naive local times ("every Monday at 09:00" from 2026-03-02T09:00), and each occurrence becomes an
instant in the series' zone by chronogram.wall_clock's rule, so an occurrence publishes at its local time on both
sides of a daylight-saving change (an occurrence in the spring-forward gap moves forward by the gap; in the
repeated hour it is the first one).

Refused (``RecurrenceRefused``, naming the field): text that is not one RRULE; DTSTART, RDATE or EXDATE inside it
(the start is a field of its own); a frequency below hourly, or occurrences closer than an hour; the parts that can
make a rule that never occurs (BYYEARDAY, BYWEEKNO, BYSETPOS, BYSECOND, BYEASTER, an ordinal BYDAY beyond the
4th, an ordinal BYDAY with BYMONTHDAY, a BYMONTHDAY no BYMONTH has); and a rule with no occurrence left. With those
parts refused, every accepted rule occurs at least once every 28 years (the calendar's weekday cycle), so searching
for its next occurrence is bounded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from dateutil.rrule import rrule, rrulestr

from chronogram.wall_clock import instant_of, local_of, zone_of

MIN_GAP = timedelta(hours=1)
MAX_COUNT = 1000
MAX_INTERVAL = 1000
MAX_RULE_CHARS = 500
MAX_START_DISTANCE = timedelta(days=3653)
_FREQUENCIES = ("HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY")
_ALLOWED_PARTS = frozenset(
    {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYHOUR", "BYMINUTE", "WKST"}
)
_DAYS_IN_MONTH = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}
_ORDINAL_DAY = re.compile(r"^([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")
# How many occurrences are checked against MIN_GAP.
_GAP_SAMPLE = 200


class RecurrenceRefused(ValueError):
    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Recurrence:
    """A checked rule: ``rule`` (the RRULE text, without "RRULE:"), from ``starts_at`` (naive, local) in
    ``time_zone``."""

    rule: str
    starts_at: datetime
    time_zone: str


@dataclass(frozen=True)
class Occurrence:
    local: datetime  # the wall-clock time the rule gives
    at: datetime  # its instant (UTC)

    @property
    def key(self) -> str:
        """What identifies it within its series: its local time, to the minute."""
        return self.local.strftime("%Y-%m-%dT%H:%M")


def checked(rule: str, *, starts_at: datetime, time_zone: str, now: datetime) -> Recurrence:
    """``rule`` as a Recurrence if it is acceptable (module docstring); raises RecurrenceRefused."""
    try:
        zone = zone_of(time_zone)
    except ValueError as unknown:
        raise RecurrenceRefused("time_zone", "unknown_time_zone", str(unknown)) from None
    if starts_at.tzinfo is not None:
        raise RecurrenceRefused(
            "starts_at",
            "local_time_required",
            "give starts_at as a local time without offset, e.g. 2026-03-02T09:00",
        )
    after = local_of(now, zone)
    if abs(starts_at - after) > MAX_START_DISTANCE:
        raise RecurrenceRefused(
            "starts_at", "starts_at_out_of_range", "starts_at must be within 10 years of now"
        )
    text = _normalised(rule)
    parsed = _parse(text, starts_at.replace(second=0, microsecond=0))
    # The first occurrences (a year's worth at most: a rare rule's are decades apart) against MIN_GAP.
    times: list[datetime] = []
    for local in _local_times(parsed, after=min(after, starts_at - timedelta(seconds=1))):
        times.append(local)
        if len(times) >= _GAP_SAMPLE or local > after + timedelta(days=366):
            break
    for earlier, later in zip(times, times[1:], strict=False):
        if later - earlier < MIN_GAP:
            raise RecurrenceRefused(
                "rule",
                "rrule_too_frequent",
                f"occurrences {earlier:%Y-%m-%d %H:%M} and {later:%H:%M} are less than an hour apart; "
                "a series publishes at most hourly",
            )
    if parsed.after(after) is None:
        raise RecurrenceRefused("rule", "rrule_never_occurs", "the rule has no occurrence from now on")
    return Recurrence(rule=text, starts_at=starts_at.replace(second=0, microsecond=0), time_zone=time_zone)


def occurrences(recurrence: Recurrence, *, after: datetime, until: datetime) -> Iterator[Occurrence]:
    """The occurrences whose instants are strictly after ``after`` and at most ``until`` (aware), in order."""
    zone = zone_of(recurrence.time_zone)
    parsed = _parse(recurrence.rule, recurrence.starts_at)
    # A day's margin on either side: the instant of a local time near a change moves by an hour or two.
    start = local_of(after, zone) - timedelta(days=1)
    end = local_of(until, zone) + timedelta(days=1)
    previous: datetime | None = None
    for local in _local_times(parsed, after=start):
        if local > end:
            return
        instant = instant_of(local, zone)
        if instant <= after or instant > until or instant == previous:
            continue
        previous = instant
        yield Occurrence(local=local, at=instant)


def _local_times(parsed: rrule, *, after: datetime) -> Iterator[datetime]:
    """The rule's local times strictly after ``after``, in one pass over the rule."""
    yield from parsed.xafter(after)


def _normalised(rule: str) -> str:
    text = rule.strip()
    if text.upper().startswith("RRULE:"):
        text = text[len("RRULE:") :]
    if not text or len(text) > MAX_RULE_CHARS or any(c in text for c in "\r\n:"):
        raise RecurrenceRefused(
            "rule", "invalid_rrule", "give one RRULE, e.g. FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0"
        )
    return text.upper()


def _parse(text: str, starts_at: datetime) -> rrule:
    parts: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if not sep or not value or name in parts:
            raise RecurrenceRefused("rule", "invalid_rrule", f"{part!r} is not a NAME=VALUE part of an RRULE")
        if name not in _ALLOWED_PARTS:
            raise RecurrenceRefused(
                "rule",
                "rrule_part_not_supported",
                f"{name} is not supported; use FREQ, INTERVAL, COUNT, UNTIL, BYDAY, BYMONTHDAY, BYMONTH, BYHOUR, "
                "BYMINUTE and WKST",
            )
        parts[name] = value
    frequency = parts.get("FREQ")
    if frequency not in _FREQUENCIES:
        raise RecurrenceRefused(
            "rule", "rrule_too_frequent", "FREQ must be HOURLY, DAILY, WEEKLY, MONTHLY or YEARLY"
        )
    _check_numbers(parts)
    _check_days(parts)
    try:
        parsed = rrulestr(text, dtstart=starts_at)
    except (ValueError, TypeError, IndexError, OverflowError) as error:
        raise RecurrenceRefused("rule", "invalid_rrule", f"not a valid RRULE: {error}") from None
    if not isinstance(parsed, rrule):
        raise RecurrenceRefused("rule", "invalid_rrule", "give one RRULE")
    return parsed


def _check_numbers(parts: dict[str, str]) -> None:
    for name, limit in (("COUNT", MAX_COUNT), ("INTERVAL", MAX_INTERVAL)):
        if name in parts and not (parts[name].isdigit() and 1 <= int(parts[name]) <= limit):
            raise RecurrenceRefused("rule", "invalid_rrule", f"{name} must be 1 to {limit}")
    if "UNTIL" in parts and parts["UNTIL"].endswith("Z"):
        raise RecurrenceRefused(
            "rule", "invalid_rrule", "UNTIL is a local time like the start, without Z (e.g. 20261231T235900)"
        )


def _check_days(parts: dict[str, str]) -> None:
    months = _numbers(parts.get("BYMONTH"), 1, 12, "BYMONTH") or list(_DAYS_IN_MONTH)
    month_days = _numbers(parts.get("BYMONTHDAY"), -31, 31, "BYMONTHDAY")
    longest = max(_DAYS_IN_MONTH[month] for month in months)
    for day in month_days:
        if day == 0 or abs(day) > longest:
            raise RecurrenceRefused(
                "rule", "rrule_never_occurs", f"BYMONTHDAY={day} falls in none of the months the rule allows"
            )
    for entry in filter(None, parts.get("BYDAY", "").split(",")):
        match = _ORDINAL_DAY.match(entry)
        if match is None:
            raise RecurrenceRefused("rule", "invalid_rrule", f"BYDAY={entry} is not a weekday like MO or 1MO")
        ordinal = match.group(1)
        if ordinal is not None:
            if not 1 <= abs(int(ordinal)) <= 4:
                raise RecurrenceRefused(
                    "rule", "rrule_part_not_supported", "an ordinal BYDAY goes from -4 to 4 (e.g. 1MO, -1FR)"
                )
            if month_days:
                raise RecurrenceRefused(
                    "rule",
                    "rrule_part_not_supported",
                    "an ordinal BYDAY (e.g. 1MO) cannot go with BYMONTHDAY",
                )


def _numbers(value: str | None, low: int, high: int, name: str) -> list[int]:
    if value is None:
        return []
    found = []
    for item in value.split(","):
        try:
            number = int(item)
        except ValueError:
            raise RecurrenceRefused(
                "rule", "invalid_rrule", f"{name}={value} is not a list of numbers"
            ) from None
        if not low <= number <= high:
            raise RecurrenceRefused("rule", "invalid_rrule", f"{name} takes {low} to {high}")
        found.append(number)
    return found


def next_after(recurrence: Recurrence, instant: datetime) -> Occurrence | None:
    """The first occurrence strictly after ``instant``, or None if the rule has ended."""
    zone = zone_of(recurrence.time_zone)
    parsed = _parse(recurrence.rule, recurrence.starts_at)
    for local in _local_times(parsed, after=local_of(instant, zone) - timedelta(days=1)):
        at = instant_of(local, zone)
        if at > instant:
            return Occurrence(local=local, at=at)
    return None
