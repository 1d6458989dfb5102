"""Shapes shared by several resources."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field
from pydantic_core import PydanticCustomError

# Ids are BIGINT; a larger number could not name a row and must not reach the database driver as an overflow.
MAX_ID = 2**63 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


def _utc_representable(value: datetime) -> datetime:
    # Times are compared and stored in UTC: 9999-12-31T23:59:59-01:00 is in year 10000 there, which a datetime
    # cannot hold, and would overflow far from the request that sent it.
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError(
            "datetime_out_of_range", "the time must fall within years 1 to 9999 once converted to UTC"
        ) from None
    return value


# An aware time given as a query parameter, within the range that every time is compared in.
QueryDatetime = Annotated[AwareDatetime, AfterValidator(_utc_representable)]
