"""Connected Instagram accounts. The access token goes in once and never comes back out."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from chronogram.instagram import PublishingLimit
from chronogram.models import InstagramAccount


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
    access_token: SecretStr = Field(
        min_length=1,
        max_length=4096,
        description="A Graph API token for that account; verified now, stored encrypted, never returned",
    )


_ACCOUNT_EXAMPLE: dict[str, Any] = {
    "id": 1,
    "ig_user_id": "17841400000000001",
    "username": "chronogram_demo",
    "connected_at": "2026-05-01T09:00:00Z",
    "updated_at": "2026-05-01T09:00:00Z",
}


class AccountOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_ACCOUNT_EXAMPLE]})

    id: int
    ig_user_id: str
    username: str
    connected_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: InstagramAccount) -> AccountOut:
        assert row.id is not None
        return cls(
            id=row.id,
            ig_user_id=row.ig_user_id,
            username=row.username,
            connected_at=row.created_at,
            updated_at=row.updated_at,
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
