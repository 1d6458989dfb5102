"""Connected Instagram accounts. The access token goes in once and never comes back out."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr
from pydantic_core import PydanticCustomError

from api.schemas.posts import MaxLateness
from chronogram.accounts import status_of
from chronogram.enums import AccountEventKind, AccountStatus, AccountStatusReason
from chronogram.instagram import PublishingLimit
from chronogram.models import AccountEvent, InstagramAccount

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
    "status": "active",
    "status_reason": None,
    "status_detail": None,
    "token_expires_at": "2026-06-30T09:00:00Z",
    "disconnecting_since": None,
    "max_lateness_seconds": None,
}


class AccountOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_ACCOUNT_EXAMPLE]})

    id: int
    ig_user_id: str
    username: str
    connected_at: datetime
    updated_at: datetime
    status: AccountStatus = Field(
        description="`active`; `expiring`: the token expires soon and its refresh has not succeeded yet (or, with "
        "Facebook Login, cannot be done: reconnect before it expires); `needs_reconnect`: Instagram refused the "
        "token or a permission was withdrawn, its posts wait, and new ones are refused (409 "
        "`account_needs_reconnect`) until it is connected again (POST /v1/accounts with a new token)"
    )
    status_reason: AccountStatusReason | None = Field(
        default=None,
        description="Why it is not active: `token_expired`, `token_invalid` (revoked, password changed...), "
        "`permission_missing` (a permission such as instagram_business_content_publish was withdrawn), "
        "`expiry_near` (expiring)",
    )
    status_detail: str | None = Field(
        default=None, description="For a human: the missing permission, or Instagram's words"
    )
    token_expires_at: datetime | None = Field(
        default=None,
        description="When the stored token expires (it is refreshed a week before); null if it does not, or is "
        "not known yet (learnt at its first refresh). The token itself is never returned",
    )
    disconnecting_since: datetime | None = Field(
        default=None,
        description="Set once a disconnection (DELETE) has begun: the account takes no new posts and is deleted "
        "once its posts' workflows have ended",
    )
    max_lateness_seconds: int | None = Field(
        description="How late outages may make the account's posts (seconds after publish_at) when a post sets "
        "none; null: the default, 86400 (24 h)"
    )

    @classmethod
    def from_row(cls, row: InstagramAccount, *, lead: timedelta, now: datetime | None = None) -> AccountOut:
        """``lead``: how long before expiry a token is refreshed (Settings.token_refresh_lead)."""
        assert row.id is not None
        view = status_of(row, now=now or datetime.now(UTC), lead=lead)
        return cls(
            id=row.id,
            ig_user_id=row.ig_user_id,
            username=row.username,
            connected_at=row.created_at,
            updated_at=row.updated_at,
            status=view.status,
            status_reason=view.reason,
            status_detail=view.detail,
            token_expires_at=row.token_expires_at,
            disconnecting_since=row.disconnecting_since,
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


class AccountEventOut(BaseModel):
    occurred_at: datetime
    kind: AccountEventKind
    message: str
    reason: AccountStatusReason | None = None
    token_expires_at: datetime | None = None

    @classmethod
    def from_row(cls, row: AccountEvent) -> AccountEventOut:
        return cls(
            occurred_at=row.occurred_at,
            kind=row.kind,
            message=row.message,
            reason=row.reason,
            token_expires_at=row.token_expires_at,
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
    events: list[AccountEventOut] = Field(
        default_factory=list,
        description="The account's latest events, oldest first: connects, token exchanges and refreshes, and "
        "why it needed reconnecting",
    )


class AccountList(BaseModel):
    data: list[AccountOut]
