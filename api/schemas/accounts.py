"""Connected Instagram accounts. The access token goes in once and never comes back out."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr
from pydantic_core import PydanticCustomError

from api.schemas.posts import MaxLateness
from chronogram.instagram import PublishingLimit
from chronogram.models import InstagramAccount

# Graph API tokens are printable ASCII without spaces. Anything else could never be one, and it would not even fit
# in the Authorization header the token is sent in: refused here, naming the field, instead of failing on the way
# to Instagram.
TOKEN_PATTERN = r"^[\x21-\x7e]+$"
_TOKEN = re.compile(TOKEN_PATTERN)


def _graph_token(token: SecretStr) -> SecretStr:
    if not _TOKEN.fullmatch(token.get_secret_value()):
        raise PydanticCustomError(
            "invalid_token_characters",
            "an access token is printable ASCII only: no spaces, control characters or other characters",
        )
    return token


GraphToken = Annotated[SecretStr, AfterValidator(_graph_token)]


class AccountCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"ig_user_id": "17841400000000001", "access_token": "sandbox-demo-token"}]
        },
    )

    ig_user_id: str = Field(
        pattern=r"^[0-9]{1,32}$", description="The Instagram professional account's id (digits)"
    )
    access_token: GraphToken = Field(
        min_length=1,
        max_length=4096,
        json_schema_extra={"pattern": TOKEN_PATTERN},
        description="A Graph API token for that account (printable ASCII, no spaces); verified now, stored "
        "encrypted, never returned",
    )
    max_lateness_seconds: MaxLateness | None = Field(
        default=None,
        description="The default of the account's posts; omitted or null: 86400 (24 h). When reconnecting, "
        "omitted keeps the account's setting",
    )


class AccountUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"max_lateness_seconds": 3600}]}
    )

    max_lateness_seconds: MaxLateness | None = Field(
        default=None,
        description="For the account's posts that set none themselves, from their next preparation on; null: the "
        "default (86400, 24 h)",
    )


_ACCOUNT_EXAMPLE: dict[str, Any] = {
    "id": 1,
    "ig_user_id": "17841400000000001",
    "username": "chronogram_demo",
    "connected_at": "2026-05-01T09:00:00Z",
    "updated_at": "2026-05-01T09:00:00Z",
    "max_lateness_seconds": None,
}


class AccountOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_ACCOUNT_EXAMPLE]})

    id: int
    ig_user_id: str
    username: str
    connected_at: datetime
    updated_at: datetime
    max_lateness_seconds: int | None = Field(
        description="How late outages may make the account's posts (seconds after publish_at) when a post sets "
        "none; null: the default, 86400 (24 h)"
    )

    @classmethod
    def from_row(cls, row: InstagramAccount) -> AccountOut:
        assert row.id is not None
        return cls(
            id=row.id,
            ig_user_id=row.ig_user_id,
            username=row.username,
            connected_at=row.created_at,
            updated_at=row.updated_at,
            max_lateness_seconds=row.max_lateness_seconds,
        )


class PublishingQuota(BaseModel):
    usage: int = Field(description="Posts published in the rolling window")
    total: int | None = Field(description="Posts allowed in the window (Instagram: 100)")
    remaining: int | None
    window_seconds: int | None = Field(description="Length of the rolling window (Instagram: 24 h)")

    @classmethod
    def from_limit(cls, limit: PublishingLimit) -> PublishingQuota:
        return cls(
            usage=limit.quota_usage,
            total=limit.quota_total,
            remaining=limit.remaining,
            window_seconds=int(limit.quota_duration.total_seconds()) if limit.quota_duration else None,
        )


class AccountDetail(AccountOut):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_ACCOUNT_EXAMPLE,
                    "publishing_quota": {"usage": 3, "total": 100, "remaining": 97, "window_seconds": 86400},
                    "publishing_quota_error": None,
                }
            ]
        }
    )

    publishing_quota: PublishingQuota | None = Field(
        description="Live from Instagram; null when it could not be read (see publishing_quota_error)"
    )
    publishing_quota_error: str | None = None


class AccountList(BaseModel):
    data: list[AccountOut]
