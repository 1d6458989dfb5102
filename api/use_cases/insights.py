"""A post's insights as read so far, and an account's best times to post (chronogram.best_times)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import BigInteger, Text, cast, func, select, type_coerce
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.deps import AppServices
from api.errors import ApiError
from api.schemas.insights import MetricsReading, OptimalSlot, OptimalTimes, PostMetricsOut
from chronogram import best_times
from chronogram.best_times import Reading, Source
from chronogram.enums import MetricsCheckpoint, PostStatus
from chronogram.instagram import GraphAPIError
from chronogram.models import InstagramAccount, Post, PostMetrics, table_of

# --- a post's readings -----------------------------------------------------------------------------------------


async def post_metrics(services: AppServices, post: Post) -> PostMetricsOut:
    assert post.id is not None
    post_id = post.id

    def load() -> list[PostMetrics]:
        with Session(services.engine) as session:
            rows = session.execute(select(PostMetrics).where(PostMetrics.post_id == post_id))  # type: ignore[arg-type]
            return list(rows.scalars())

    rows = await run_in_threadpool(load)
    order = list(MetricsCheckpoint)
    rows.sort(key=lambda row: order.index(row.checkpoint))
    read = {row.checkpoint for row in rows}
    next_at = None
    if post.status is PostStatus.PUBLISHED and post.published_at is not None:
        due = [
            post.published_at + timedelta(seconds=checkpoint.seconds)
            for checkpoint in order
            if checkpoint not in read
        ]
        next_at = next((when for when in due if when >= datetime.now(UTC)), None)
    return PostMetricsOut(
        post_id=post_id,
        status=post.status,
        published_at=post.published_at,
        readings=[MetricsReading.from_row(row) for row in rows],
        next_reading_at=next_at,
    )


# --- best times --------------------------------------------------------------------------------------------------


def time_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApiError(
            422,
            "invalid_time_zone",
            f"time_zone: {name!r} is not an IANA time zone (e.g. Europe/Paris, America/New_York, UTC)",
            field="time_zone",
        ) from None


def _history(services: AppServices, account_id: int) -> list[Reading]:
    """Every reading with values of the account's published posts. Read as plain numbers and text (the epoch of
    published_at computed by the database), not through the models' column types: at 10,000 posts their
    per-row conversions were most of the route's time."""
    posts, metrics = table_of(Post), table_of(PostMetrics)
    if services.engine.dialect.name == "postgresql":
        epoch = cast(func.extract("epoch", posts.c.published_at), BigInteger)
    else:
        epoch = cast(func.strftime("%s", posts.c.published_at), BigInteger)
    query = (
        select(
            posts.c.id,
            epoch,
            type_coerce(metrics.c.checkpoint, Text),
            metrics.c.total_interactions,
        )
        .join(metrics, metrics.c.post_id == posts.c.id)
        .where(
            posts.c.account_id == account_id,
            posts.c.status == PostStatus.PUBLISHED.value,
            metrics.c.total_interactions.is_not(None),
        )
    )
    checkpoints = {checkpoint.value: checkpoint for checkpoint in MetricsCheckpoint}
    with services.engine.connect() as connection:
        return [
            Reading(post_id, datetime.fromtimestamp(seconds, UTC), checkpoints[checkpoint], total)
            for post_id, seconds, checkpoint, total in connection.execute(query)
        ]


def _fingerprint(services: AppServices, account_id: int) -> tuple[int, str]:
    """What changes whenever a reading of the account's posts is added, replaced or deleted: their count and the
    latest time one was taken (one aggregate, computed inside the database)."""
    posts, metrics = table_of(Post), table_of(PostMetrics)
    query = (
        select(func.count(), type_coerce(func.max(metrics.c.captured_at), Text))
        .select_from(metrics.join(posts, metrics.c.post_id == posts.c.id))
        .where(posts.c.account_id == account_id, posts.c.status == PostStatus.PUBLISHED.value)
    )
    with services.engine.connect() as connection:
        count, latest = connection.execute(query).one()
    return int(count), str(latest)


class _HistoryCache:
    """Each account's best slots from history, per time zone, while its readings stay the same (per API
    process, bounded): the answer changes only when a reading is taken, a few times a day per post."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[int, str], tuple[tuple[int, str], int, list[best_times.Slot]]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def get(
        self, key: tuple[int, str], fingerprint: tuple[int, str]
    ) -> tuple[int, list[best_times.Slot]] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != fingerprint:
                return None
            self._entries.move_to_end(key)
            return entry[1], entry[2]

    def put(
        self, key: tuple[int, str], fingerprint: tuple[int, str], analyzed: int, slots: list[best_times.Slot]
    ) -> None:
        with self._lock:
            self._entries[key] = (fingerprint, analyzed, slots)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


HISTORY_CACHE = _HistoryCache()


def _history_slots(
    services: AppServices, account_id: int, zone_name: str
) -> tuple[int, list[best_times.Slot]]:
    fingerprint = _fingerprint(services, account_id)
    cached = HISTORY_CACHE.get((account_id, zone_name), fingerprint)
    if cached is not None:
        return cached
    readings = _history(services, account_id)
    analyzed = best_times.posts_with_readings(readings)
    slots = best_times.slots_from_history(readings, ZoneInfo(zone_name))
    HISTORY_CACHE.put((account_id, zone_name), fingerprint, analyzed, slots)
    return analyzed, slots


class AudienceCache:
    """Each account's online followers by hour, kept a while per API process: they change by the day, and the
    Graph API's call budget is per account."""

    def __init__(self, ttl: timedelta = timedelta(hours=6), size: int = 2048) -> None:
        self._ttl = ttl.total_seconds()
        self._size = size
        self._entries: OrderedDict[int, tuple[float, list[tuple[datetime, int]]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, account_id: int) -> list[tuple[datetime, int]] | None:
        with self._lock:
            entry = self._entries.get(account_id)
            if entry is None or time.monotonic() - entry[0] > self._ttl:
                return None
            return entry[1]

    def put(self, account_id: int, online: list[tuple[datetime, int]]) -> None:
        with self._lock:
            self._entries[account_id] = (time.monotonic(), online)
            self._entries.move_to_end(account_id)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


AUDIENCE_CACHE = AudienceCache()
_AUDIENCE_DAYS = 30


async def _audience(services: AppServices, account: InstagramAccount) -> list[tuple[datetime, int]]:
    assert account.id is not None
    cached = AUDIENCE_CACHE.get(account.id)
    if cached is not None:
        return cached
    until = datetime.now(UTC)
    values = await services.graph.get_online_followers(
        ig_user_id=account.ig_user_id,
        access_token=account.access_token(services.cipher).get_secret_value(),
        since=until - timedelta(days=_AUDIENCE_DAYS),
        until=until,
    )
    online = [
        (value.end_time - timedelta(days=1) + timedelta(hours=hour), count)
        for value in values
        for hour, count in value.by_hour.items()
    ]
    AUDIENCE_CACHE.put(account.id, online)
    return online


async def optimal_times(services: AppServices, account: InstagramAccount, zone_name: str) -> OptimalTimes:
    assert account.id is not None
    zone = time_zone(zone_name)
    analyzed, slots = await run_in_threadpool(_history_slots, services, account.id, zone_name)
    source = Source.HISTORY if slots else Source.NONE
    audience_error = None
    if analyzed < best_times.MIN_HISTORY_POSTS:
        try:
            audience = best_times.slots_from_audience(await _audience(services, account), zone)
        except GraphAPIError as error:
            audience, audience_error = [], error.user_message
        if audience:
            slots, source = audience, Source.AUDIENCE
    return OptimalTimes(
        account_id=account.id,
        time_zone=zone_name,
        source=source,
        posts_analyzed=analyzed,
        slots=[OptimalSlot.from_slot(slot) for slot in slots],
        audience_error=audience_error,
    )
