"""Posting schedules and the queue, as a client sends and reads them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from chronogram.enums import PostStatus, PostType
from chronogram.posting_schedule import (
    MAX_SLOTS_PER_WEEK,
    PostingSchedule,
    Weekday,
    parse_slot_time,
    weekly_slots,
)
from chronogram.wall_clock import zone_of

SlotTimeText = Annotated[
    str,
    Field(
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="A wall-clock time, HH:MM", examples=["09:00"]
    ),
]


class Day(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @property
    def weekday(self) -> Weekday:
        return Weekday[self.name]


class SlotGroup(BaseModel):
    """The same times on several days."""

    model_config = ConfigDict(extra="forbid")

    days: list[Day] = Field(min_length=1, max_length=7, examples=[["mon", "tue", "wed", "thu", "fri"]])
    times: list[SlotTimeText] = Field(
        min_length=1, max_length=MAX_SLOTS_PER_WEEK, examples=[["09:00", "17:30"]]
    )


TimeZoneName = Annotated[
    str, Field(min_length=1, max_length=64, description="An IANA time zone", examples=["Europe/Paris"])
]


class ScheduleIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "time_zone": "Europe/Paris",
                    "slots": [{"days": ["mon", "tue", "wed", "thu", "fri"], "times": ["09:00", "17:30"]}],
                }
            ]
        },
    )

    time_zone: TimeZoneName
    slots: list[SlotGroup] = Field(min_length=1, max_length=MAX_SLOTS_PER_WEEK)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone_of(value)  # UnknownTimeZone is a ValueError: a 422 naming time_zone
        return value

    @model_validator(mode="after")
    def _bounded(self) -> ScheduleIn:
        if len(self.schedule().slots) > MAX_SLOTS_PER_WEEK:
            raise ValueError(f"slots: at most {MAX_SLOTS_PER_WEEK} slots a week")
        return self

    def schedule(self) -> PostingSchedule:
        slots = (
            slot
            for group in self.slots
            for slot in weekly_slots(
                [day.weekday for day in group.days], [parse_slot_time(t) for t in group.times]
            )
        )
        return PostingSchedule(time_zone=self.time_zone, slots=tuple(sorted(set(slots))))


class SlotOut(BaseModel):
    day: Day
    time: str


class ScheduleOut(BaseModel):
    account_id: int
    time_zone: str
    slots: list[SlotOut] = Field(description="Every weekly slot, Monday first")
    updated_at: datetime


class QueuedPost(BaseModel):
    id: int
    type: PostType
    status: PostStatus
    caption: str | None
    publish_at: datetime


class QueueSlotOut(BaseModel):
    at: datetime = Field(description="The slot's instant, UTC")
    local_time: str = Field(description="The slot as the account's clock shows it, with its offset")
    posts: list[QueuedPost] = Field(description="Scheduled posts at this instant; empty: the slot is free")


class QueueOut(BaseModel):
    account_id: int
    time_zone: str
    slots: list[QueueSlotOut]


class ReflowedPost(BaseModel):
    post_id: int
    previous_publish_at: datetime
    publish_at: datetime


class ReflowRefusal(BaseModel):
    post_id: int
    code: str
    detail: str


class ReflowOut(BaseModel):
    moved: list[ReflowedPost] = Field(description="Queued posts rescheduled into the schedule's slots")
    unchanged: list[int] = Field(description="Queued posts already in their slot")
    refused: list[ReflowRefusal] = Field(
        description="Queued posts that could not move (publishing began meanwhile, or no free slot in the horizon)"
    )
