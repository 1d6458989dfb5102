"""Recurring series as a client sends and reads them.

Content is given directly (caption, first comment, media, type). A series could later take a template and its
variables instead (issue 16, templates): that is one more optional pair of fields here, resolved to a caption
where the occurrence's content is built (activities.series), with nothing else to change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, NaiveDatetime

from api.schemas.common import Id
from api.schemas.posts import Caption
from api.schemas.queues import TimeZoneName
from chronogram.enums import PostStatus, PostType, SeriesStatus
from chronogram.models import Series
from chronogram.post_rules import CAROUSEL_MAX_ITEMS
from chronogram.recurrence import MAX_RULE_CHARS

RULE_DESCRIPTION = (
    "An RFC 5545 RRULE, read in local time from starts_at (e.g. FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=9;BYMINUTE=0). At "
    "most hourly; parts FREQ, INTERVAL, COUNT, UNTIL (local, no Z), BYDAY, BYMONTHDAY, BYMONTH, BYHOUR, BYMINUTE, WKST"
)
_EXAMPLE: dict[str, Any] = {
    "account_id": 1,
    "type": "IMAGE",
    "media_ids": [7],
    "caption": "Monday bread #bakery",
    "rule": "FREQ=WEEKLY;BYDAY=MO",
    "starts_at": "2026-03-02T09:00",
    "time_zone": "Europe/Paris",
}


class SeriesCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})

    account_id: Id
    type: PostType
    media_ids: list[Id] = Field(min_length=1, max_length=CAROUSEL_MAX_ITEMS)
    caption: Caption | None = None
    first_comment: Caption | None = None
    rule: str = Field(min_length=1, max_length=MAX_RULE_CHARS, description=RULE_DESCRIPTION)
    starts_at: NaiveDatetime = Field(
        description="The first local (wall-clock) time, without offset: the rule's DTSTART in time_zone"
    )
    time_zone: TimeZoneName


class SeriesUpdate(BaseModel):
    """Only the fields sent change. The account and the type stay."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"caption": "Monday loaves #bakery"}, {"rule": "FREQ=WEEKLY;BYDAY=TU"}]
        },
    )

    media_ids: list[Id] | None = Field(default=None, min_length=1, max_length=CAROUSEL_MAX_ITEMS)
    caption: Caption | None = None
    first_comment: Caption | None = None
    rule: str | None = Field(
        default=None, min_length=1, max_length=MAX_RULE_CHARS, description=RULE_DESCRIPTION
    )
    starts_at: NaiveDatetime | None = None
    time_zone: TimeZoneName | None = None


class SeriesOut(BaseModel):
    id: int
    account_id: int
    type: PostType
    media_ids: list[int]
    caption: str | None
    first_comment: str | None
    rule: str
    starts_at: str = Field(description="Local time, YYYY-MM-DDTHH:MM")
    time_zone: str
    status: SeriesStatus
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Series) -> SeriesOut:
        assert row.id is not None
        return cls(
            id=row.id,
            account_id=row.account_id,
            type=row.type,
            media_ids=list(row.media_ids),
            caption=row.caption,
            first_comment=row.first_comment,
            rule=row.rule,
            starts_at=row.starts_at,
            time_zone=row.time_zone,
            status=row.status,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class OccurrenceOut(BaseModel):
    local_time: str = Field(
        description="The occurrence's local time, YYYY-MM-DDTHH:MM (its key in the series)"
    )
    post_id: int | None = Field(description="The post created for it")
    status: PostStatus | None
    publish_at: datetime | None
    problem: str | None = Field(description="Why no post was created for it")


class UpcomingOut(BaseModel):
    local_time: str
    at: datetime


class SeriesDetail(SeriesOut):
    occurrences: list[OccurrenceOut] = Field(
        description="The occurrences created so far, latest 50, oldest first"
    )
    upcoming: list[UpcomingOut] = Field(description="The next occurrences not created yet (at most 5)")


class SeriesList(BaseModel):
    data: list[SeriesOut]
