"""API keys. The key itself is in one response only, the one that creates it: only its sha256 is stored."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from chronogram.models import ApiKey

MAX_KEY_NAME_CHARS = 100


def _printable(name: str) -> str:
    # Control characters (Unicode category Cc: tabs, new lines, escapes, DEL and the C1 set) inside a name would
    # garble listings and logs; around it they are trimmed with the other whitespace.
    if any(unicodedata.category(char) == "Cc" for char in name):
        raise PydanticCustomError(
            "control_characters", "a key name may not contain control characters such as a tab or a new line"
        )
    return name


KeyName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_KEY_NAME_CHARS),
    AfterValidator(_printable),
]

_OUT_EXAMPLE: JsonDict = {
    "id": 3,
    "name": "CI pipeline",
    "prefix": "cg_Q2h5cm9u",
    "created_at": "2026-05-01T09:00:00Z",
    "last_used_at": "2026-05-02T14:31:00Z",
    "revoked_at": None,
}


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "CI pipeline"}]})

    name: KeyName = Field(
        description=f"What the key is for, to tell keys apart: 1 to {MAX_KEY_NAME_CHARS} characters once "
        "trimmed, no control characters"
    )


class KeyOut(BaseModel):
    """An API key as listed: never the key itself, nor its hash."""

    model_config = ConfigDict(json_schema_extra={"examples": [_OUT_EXAMPLE]})

    id: int
    name: str | None = Field(description="Null for keys made without one")
    prefix: str = Field(
        description="The first characters of the key, to recognise it by; not enough to use it"
    )
    created_at: datetime
    last_used_at: datetime | None = Field(
        description="When the key last authenticated a request, to the minute (it is recorded at most once a "
        "minute); null if it never has"
    )
    revoked_at: datetime | None = Field(
        description="When it was revoked; null while it works. A revoked key is refused at once, and stays "
        "listed"
    )

    @classmethod
    def from_row(cls, row: ApiKey) -> KeyOut:
        assert row.id is not None
        return cls(
            id=row.id,
            name=row.name,
            prefix=row.prefix,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )


class KeyCreated(KeyOut):
    """A key just made: the only response that holds the key itself."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_OUT_EXAMPLE,
                    "last_used_at": None,
                    "key": "cg_Q2h5cm9ub2dyYW0tZXhhbXBsZS1rZXktbm90LXJlYWwtMDAw",
                }
            ]
        }
    )

    key: str = Field(
        description="The API key. Shown only now, in this response, and never again: only its sha256 is "
        "stored, so a key not copied now is lost (revoke it and create another). Send it as "
        "`Authorization: Bearer <key>`."
    )


class KeyList(BaseModel):
    data: list[KeyOut] = Field(description="Every key of the caller, revoked ones included, oldest first")
