"""The best times to post: the top weekday-and-hour slots of an account, scored from its own published posts'
insights or, with too little history, from when its audience is online. Pure: no I/O.

From history (``source = history``), for each published post with a reading:

    e(p)    = total_interactions at the post's most mature reading (+7 d, else +24 h, else +1 h)
    r(p)    = e(p) / mean e of the account's posts whose most mature reading is the same checkpoint
              (1.0: a typical post of the account, compared with posts of the same age)
    slot    = the local weekday and hour (in the requested time zone) the post was published at
    score   = (Σ r(p) + K) / (n + K)     over the slot's n posts, K = 2: a slot with few posts is pulled towards 1.0
    confidence = n / (n + K)

From the audience (``source = audience``), for each hour of the last days' online_followers:

    score   = mean followers online in the slot / mean over all slots (1.0: a typical hour)
    confidence = 0.5 · min(1, days of data / 28); posts = 0 (it says when followers are online, not how they
              engage, so it never reaches the confidence of history)

Slots are ranked by score, then by posts, then in week order; ``top`` of them are returned.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from chronogram.enums import MetricsCheckpoint

SHRINK_POSTS = 2
# Below this many posts with readings, history says too little: the audience's online hours are used instead.
MIN_HISTORY_POSTS = 10
AUDIENCE_MAX_CONFIDENCE = 0.5
AUDIENCE_FULL_DAYS = 28
TOP_SLOTS = 5
_MATURITY = {MetricsCheckpoint.HOUR: 0, MetricsCheckpoint.DAY: 1, MetricsCheckpoint.WEEK: 2}


class Source(StrEnum):
    HISTORY = "history"
    AUDIENCE = "audience"
    # Neither: no post with readings and no audience data.
    NONE = "none"


class Weekday(StrEnum):
    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"

    @classmethod
    def of(cls, number: int) -> Weekday:
        return list(cls)[number]


@dataclass(frozen=True)
class Reading:
    """One reading of one post: ``post_id`` groups a post's readings."""

    post_id: int
    published_at: datetime
    checkpoint: MetricsCheckpoint
    total_interactions: int


@dataclass(frozen=True)
class Slot:
    weekday: Weekday
    hour: int
    score: float
    posts: int
    confidence: float


def slots_from_history(readings: Iterable[Reading], zone: ZoneInfo, *, top: int = TOP_SLOTS) -> list[Slot]:
    latest: dict[int, Reading] = {}
    for reading in readings:
        kept = latest.get(reading.post_id)
        if kept is None or _MATURITY[reading.checkpoint] > _MATURITY[kept.checkpoint]:
            latest[reading.post_id] = reading
    totals: dict[MetricsCheckpoint, list[int]] = defaultdict(list)
    for reading in latest.values():
        totals[reading.checkpoint].append(reading.total_interactions)
    baseline = {checkpoint: sum(values) / len(values) for checkpoint, values in totals.items()}
    relative: dict[tuple[int, int], list[float]] = defaultdict(list)
    for reading in latest.values():
        base = baseline[reading.checkpoint]
        if base <= 0:
            continue
        local = reading.published_at.astimezone(zone)
        relative[(local.weekday(), local.hour)].append(reading.total_interactions / base)
    slots = [
        Slot(
            weekday=Weekday.of(day),
            hour=hour,
            score=(sum(values) + SHRINK_POSTS) / (len(values) + SHRINK_POSTS),
            posts=len(values),
            confidence=len(values) / (len(values) + SHRINK_POSTS),
        )
        for (day, hour), values in relative.items()
    ]
    return _ranked(slots, top)


def posts_with_readings(readings: Sequence[Reading]) -> int:
    return len({reading.post_id for reading in readings})


def slots_from_audience(
    online: Iterable[tuple[datetime, int]], zone: ZoneInfo, *, top: int = TOP_SLOTS
) -> list[Slot]:
    """``online``: (start of an hour, followers online during it)."""
    by_slot: dict[tuple[int, int], list[int]] = defaultdict(list)
    days: set[tuple[int, int, int]] = set()
    for start, count in online:
        local = start.astimezone(zone)
        by_slot[(local.weekday(), local.hour)].append(count)
        days.add((local.year, local.month, local.day))
    if not by_slot:
        return []
    means = {slot: sum(counts) / len(counts) for slot, counts in by_slot.items()}
    overall = sum(means.values()) / len(means)
    if overall <= 0:
        return []
    confidence = AUDIENCE_MAX_CONFIDENCE * min(1.0, len(days) / AUDIENCE_FULL_DAYS)
    slots = [
        Slot(weekday=Weekday.of(day), hour=hour, score=mean / overall, posts=0, confidence=confidence)
        for (day, hour), mean in means.items()
    ]
    return _ranked(slots, top)


def _ranked(slots: list[Slot], top: int) -> list[Slot]:
    slots.sort(key=lambda s: (-s.score, -s.posts, list(Weekday).index(s.weekday), s.hour))
    return [Slot(s.weekday, s.hour, round(s.score, 3), s.posts, round(s.confidence, 3)) for s in slots[:top]]
