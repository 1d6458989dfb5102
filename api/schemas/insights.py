"""A post's insights over time, and an account's best times to post."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from chronogram.best_times import Slot, Source, Weekday
from chronogram.enums import MetricsCheckpoint, PostStatus
from chronogram.models import PostMetrics


class MetricsReading(BaseModel):
    checkpoint: MetricsCheckpoint = Field(description="The post's age at the reading: 1h, 24h or 7d")
    captured_at: datetime
    reach: int | None = None
    likes: int | None = None
    comments: int | None = None
    saved: int | None = None
    shares: int | None = None
    views: int | None = None
    total_interactions: int | None = None
    error_code: str | None = Field(
        default=None,
        description="Set when the reading has no values: `insights_unavailable` (Instagram had no data for the "
        "post then), or the Graph API error's kind",
    )
    error_message: str | None = None

    @classmethod
    def from_row(cls, row: PostMetrics) -> MetricsReading:
        return cls.model_validate(row, from_attributes=True)


class PostMetricsOut(BaseModel):
    post_id: int
    status: PostStatus
    published_at: datetime | None
    readings: list[MetricsReading] = Field(description="Oldest first; one per checkpoint read so far")
    next_reading_at: datetime | None = Field(
        description="When the next checkpoint is due (none when every one is past, or the post is not published)"
    )


class OptimalSlot(BaseModel):
    weekday: Weekday
    hour: int = Field(ge=0, le=23, description="Local hour in `time_zone` (0-23)")
    score: float = Field(
        description="Engagement relative to the account's typical post (1.0), or, from the "
        "audience, followers online relative to a typical hour"
    )
    posts: int = Field(description="Published posts with readings behind the score (0 from the audience)")
    confidence: float = Field(ge=0, le=1)

    @classmethod
    def from_slot(cls, slot: Slot) -> OptimalSlot:
        return cls(
            weekday=slot.weekday,
            hour=slot.hour,
            score=slot.score,
            posts=slot.posts,
            confidence=slot.confidence,
        )


class OptimalTimes(BaseModel):
    account_id: int
    time_zone: str
    source: Source = Field(
        description="`history` (the account's own posts), `audience` (when its followers are "
        "online) or `none` (neither yet)"
    )
    posts_analyzed: int = Field(description="Published posts of the account with at least one reading")
    slots: list[OptimalSlot] = Field(description="At most 5, best first")
    audience_error: str | None = Field(
        default=None, description="Why the audience's online hours could not be read, when they were needed"
    )
