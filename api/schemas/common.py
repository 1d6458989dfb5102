"""Shapes shared by several resources."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# Ids are BIGINT; a larger number could not name a row and must not reach the database driver as an overflow.
MAX_ID = 2**63 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
