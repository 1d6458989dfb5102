"""``/_sandbox/accounts/{ig_user_id}/audience``: the audience profile behind an account's insights
(sandbox.audience). An account without one has the default profile."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from sandbox.admin_routes import StateDep
from sandbox.audience import AudienceProfile, Peak

router = APIRouter(prefix="/_sandbox", tags=["sandbox"])


class PeakBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weekday: int = Field(ge=0, le=6, description="0 is Monday")
    hour: int = Field(ge=0, le=23)
    weight: float = Field(gt=0)


class AudienceBody(BaseModel):
    """Every field optional: what is left out keeps the default profile's value."""

    model_config = ConfigDict(extra="forbid")

    timezone: str | None = None
    followers: int | None = Field(default=None, ge=0)
    peaks: list[PeakBody] | None = None
    reach_rate: float | None = Field(default=None, ge=0)
    online_rate: float | None = Field(default=None, ge=0, le=1)
    lag_seconds: float | None = Field(default=None, ge=0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r}") from None
        return value


def _json(profile: AudienceProfile) -> dict[str, Any]:
    return asdict(profile)


@router.put("/accounts/{ig_user_id}/audience")
async def set_audience(ig_user_id: str, body: AudienceBody, state: StateDep) -> dict[str, Any]:
    if ig_user_id not in state.accounts:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such account")
    profile = AudienceProfile()
    for name, value in body.model_dump(exclude_none=True, exclude={"peaks"}).items():
        setattr(profile, name, value)
    if body.peaks is not None:
        profile.peaks = [Peak(peak.weekday, peak.hour, peak.weight) for peak in body.peaks]
    state.audiences[ig_user_id] = profile
    return _json(profile)


@router.get("/accounts/{ig_user_id}/audience")
async def get_audience(ig_user_id: str, state: StateDep) -> dict[str, Any]:
    if ig_user_id not in state.accounts:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such account")
    return _json(state.audiences.get(ig_user_id) or AudienceProfile())
