"""Sandbox configuration: the knobs for what Meta leaves undocumented, and for making tests fast."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEMO_IG_USER_ID = "17841400000000001"
DEMO_USERNAME = "chronogram_demo"
# Public by design: it only opens the local sandbox, and the README and tests quote it.
DEMO_ACCESS_TOKEN = "sandbox-demo-token"

MIB = 1024 * 1024
MB = 1000 * 1000


class SandboxConfig(BaseModel):
    """Every field can be changed at runtime with ``PATCH /_sandbox/config``; ``POST /_sandbox/reset``
    restores the values the process started with."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    default_api_version: str = Field(default="v25.0", pattern=r"^v\d+\.\d+$")

    # Processing delays (sandbox clock). Accounts may override them; see POST /_sandbox/accounts.
    image_processing_seconds: float = Field(default=2.0, ge=0)
    video_processing_seconds: float = Field(default=30.0, ge=0)
    carousel_processing_seconds: float = Field(default=1.0, ge=0)

    # Quotas and lifetimes (reference sections 4, 7).
    quota_total: int = Field(default=100, ge=0)
    quota_duration_seconds: int = Field(default=86400, gt=0)
    container_ttl_seconds: int = Field(default=86400, gt=0)
    container_cap: int = Field(default=400, ge=0)
    # The error for the 400-containers/24 h cap is undocumented (reference section 11, item 4).
    container_cap_error_code: int = 4
    container_cap_error_subcode: int | None = None
    # 0 disables the Business Use Case call budget; otherwise calls per account per rolling hour.
    buc_calls_per_hour: int = Field(default=4800, ge=0)

    # Undocumented behaviours (reference section 11).
    republish_mode: Literal["error", "idempotent", "duplicate"] = "error"
    errored_publish_mode: Literal["not_ready", "expired"] = "not_ready"
    accept_png: bool = False

    # Media rules (reference section 5).
    max_image_bytes: int = Field(default=8 * MIB, gt=0)
    max_reel_bytes: int = Field(default=300 * MB, gt=0)
    max_story_video_bytes: int = Field(default=100 * MB, gt=0)
    max_carousel_video_bytes: int = Field(default=100 * MB, gt=0)
    min_aspect_ratio: float = Field(default=0.8, gt=0)
    max_aspect_ratio: float = Field(default=1.91, gt=0)
    min_image_width: int = Field(default=320, gt=0)
    max_image_width: int = Field(default=1440, gt=0)
    download_timeout_seconds: float = Field(default=10.0, gt=0)

    # Tokens.
    token_refresh_min_age_seconds: int = Field(default=86400, ge=0)
    # The lifetime of every long-lived token issued by an exchange or a refresh (Meta: 60 days).
    long_lived_token_seconds: int = Field(default=60 * 86400, gt=0)
    short_lived_token_seconds: int = Field(default=3600, gt=0)
    # The code of the permission error a token without a needed scope gets: 10, or one of 200-299.
    permission_error_code: int = Field(default=10)

    @field_validator("permission_error_code")
    @classmethod
    def _permission_code(cls, value: int) -> int:
        if value != 10 and not 200 <= value <= 299:
            raise ValueError("a permission error's code is 10 or 200-299")
        return value

    app_id: str = "100000000000001"
    app_secret: str = "sandbox-app-secret"

    permalink_host: str = "https://www.instagram.com"
    demo_account: bool = True
