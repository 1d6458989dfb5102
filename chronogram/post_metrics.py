"""A published post's insights over time (table post_metrics): one reading per checkpoint (+1 h, +24 h, +7 d),
written by activities/metrics.py and read by the API. A reading taken again replaces the earlier one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, insert

from chronogram.enums import MetricsCheckpoint, PostType
from chronogram.models import PostMetrics, table_of

METRIC_NAMES = ("reach", "likes", "comments", "saved", "shares", "views", "total_interactions")

# What Instagram reports for each post type (Meta's Instagram Media Insights: metrics per media product type).
_FEED_METRICS = METRIC_NAMES
_STORY_METRICS = ("reach", "shares", "views", "total_interactions")


def metrics_for(post_type: PostType) -> tuple[str, ...]:
    return _STORY_METRICS if post_type is PostType.STORIES else _FEED_METRICS


# The error code of a reading for which Instagram had no data: not yet (its insights lag), or no longer (a story's
# insights last 24 hours).
UNAVAILABLE = "insights_unavailable"


@dataclass(frozen=True)
class Reading:
    checkpoint: MetricsCheckpoint
    captured_at: datetime
    values: Mapping[str, int]
    error_code: str | None = None
    error_message: str | None = None


def store_reading(connection: Connection, post_id: int, reading: Reading) -> None:
    """Replaces the post's reading at that checkpoint (raises IntegrityError when the post no longer exists)."""
    table = table_of(PostMetrics)
    connection.execute(
        delete(table).where(table.c.post_id == post_id, table.c.checkpoint == reading.checkpoint.value)
    )
    row: dict[str, object] = {
        "post_id": post_id,
        "checkpoint": reading.checkpoint,
        "captured_at": reading.captured_at,
        "error_code": reading.error_code,
        "error_message": reading.error_message,
    }
    row.update({name: reading.values.get(name) for name in METRIC_NAMES})
    connection.execute(insert(table).values(**row))
