"""Wall-clock times in an IANA time zone, and the instant each one names: the one rule for daylight-saving changes
that posting schedules (chronogram.posting_schedule) and recurring series (chronogram.recurrence) share.

A slot or an occurrence is a local time ("09:00 in Europe/Paris"), not an instant: its instant is worked out for
each date, so 09:00 stays 09:00 on the clock across a change. Two local times need a rule:

* In the spring-forward gap (02:30 on the night Paris jumps from 02:00 to 03:00), the time never shows on a clock.
  It is read with the offset in force before the change, which is the instant the clock would have shown it had
  it not jumped: 02:30 becomes 03:30 local (01:30 UTC). Nothing is skipped, and nothing is moved to another day.
* In the repeated hour (02:30 on the night Paris falls back from 03:00 to 02:00), the time shows twice. The first
  one (fold=0, still on summer time) is taken, once: a weekly slot never publishes twice that night.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class UnknownTimeZone(ValueError):
    """Not an IANA time zone name that tzdata knows."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown time zone {name!r}: give an IANA name such as Europe/Paris")
        self.name = name


def zone_of(name: str) -> ZoneInfo:
    """The zone named ``name`` (IANA, e.g. "America/New_York"); raises UnknownTimeZone."""
    # ZoneInfo accepts some file-system paths and would read a "localtime" file: only plain IANA keys are names.
    if not name or name != name.strip() or name.startswith("/") or ".." in name or len(name) > 64:
        raise UnknownTimeZone(name)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise UnknownTimeZone(name) from None


def instant_of(local: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of the naive wall-clock time ``local`` in ``zone`` (the module's gap and fold rule)."""
    if local.tzinfo is not None:
        raise ValueError("a wall-clock time is naive: its zone is given apart")
    return local.replace(tzinfo=zone, fold=0).astimezone(UTC)


def local_of(instant: datetime, zone: ZoneInfo) -> datetime:
    """The naive wall-clock time ``instant`` shows in ``zone``."""
    return instant.astimezone(zone).replace(tzinfo=None)
