"""Outages: for a while, every call (or every call of one endpoint, or one account, or both) fails as Meta fails
when it is down or throttling, then the sandbox recovers by itself.

Unlike faults, which misbehave for the next N calls, an outage is a window ``[started_at, ends_at)`` on the
sandbox clock, so a test advances the clock to see it end. A call it fails does nothing at all: no publish, no
container, no comment, no call counted against the account's budget, and no fault consumed.

What each kind answers (reference sections 6.2, 6.3, 6.7, 10.4; Meta's rate-limiting guide):

=================  ====  =====  =========================================================================
kind               HTTP  code   headers besides the usual ones
=================  ====  =====  =========================================================================
unavailable        500   2      ``WWW-Authenticate: OAuth "Facebook Platform" "unknown_error" …``
app_throttle       400   4      ``X-App-Usage`` at ``call_count`` 100 (the app's hourly window; no estimate)
user_throttle      400   17     ``X-Business-Use-Case-Usage`` for the account at 100, with the estimate
page_throttle      400   32     ``X-Page-Usage`` at ``call_count`` 100 (the page's 24 h window; no estimate)
custom_throttle    400   613    ``X-Business-Use-Case-Usage`` for the account at 100, with the estimate
buc_throttle       400   80002  ``X-Business-Use-Case-Usage`` for the account at 100, with the estimate
=================  ====  =====  =========================================================================

``estimated_time_to_regain_access`` is the outage's remaining time in whole minutes, rounded up.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sandbox.errors import GraphError, catalogued
from sandbox.faults import ENDPOINTS
from sandbox.usage import app_usage_header, buc_header, page_usage_header

# Meta's wording when the service is down, as it reaches clients (an HTTP 500 with is_transient). The
# catalogue's code 2 text is the one seen for one-off failures; this is the one seen during downtime.
UNAVAILABLE_MESSAGE = "(#2) Service temporarily unavailable"


class OutageKind(StrEnum):
    UNAVAILABLE = "unavailable"  # HTTP 500, code 2: Meta is down
    APP_THROTTLE = "app_throttle"  # code 4: the app's platform rate limit
    USER_THROTTLE = "user_throttle"  # code 17: the user's rate limit
    PAGE_THROTTLE = "page_throttle"  # code 32: the page's rate limit (Facebook Login flavour)
    CUSTOM_THROTTLE = "custom_throttle"  # code 613: a custom rate limit
    BUC_THROTTLE = "buc_throttle"  # code 80002: Instagram's Business Use Case limit

    @property
    def code(self) -> int:
        return _CODES[self]

    @property
    def throttle(self) -> bool:
        """Throttles need to know who calls (Meta counts per app, user or account), so a call with a bad token
        gets its token error first; an unavailable service fails before it even looks at the token."""
        return self is not OutageKind.UNAVAILABLE


_CODES = {
    OutageKind.UNAVAILABLE: 2,
    OutageKind.APP_THROTTLE: 4,
    OutageKind.USER_THROTTLE: 17,
    OutageKind.PAGE_THROTTLE: 32,
    OutageKind.CUSTOM_THROTTLE: 613,
    OutageKind.BUC_THROTTLE: 80002,
}
# The kinds whose answer carries X-Business-Use-Case-Usage with estimated_time_to_regain_access.
_BUC_KINDS = (OutageKind.USER_THROTTLE, OutageKind.CUSTOM_THROTTLE, OutageKind.BUC_THROTTLE)


class OutageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: OutageKind = OutageKind.UNAVAILABLE
    # How long it lasts from now, on the sandbox clock.
    seconds: float = Field(gt=0)
    endpoint: str = "*"
    ig_user_id: str | None = None
    # Throttles come back as 400 by default; the reference (section 11, item 7) leaves 403/429 open.
    http_status: int | None = Field(default=None, ge=400, le=599)

    @model_validator(mode="after")
    def _check(self) -> OutageSpec:
        if self.endpoint != "*" and self.endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be '*' or one of {', '.join(ENDPOINTS)}")
        return self


@dataclass
class Outage:
    id: str
    spec: OutageSpec
    started_at: datetime
    ends_at: datetime
    ended_early_at: datetime | None = None
    hits: int = 0

    def active(self, now: datetime) -> bool:
        return self.started_at <= now < self.ends_at

    def matches(self, endpoint: str, ig_user_id: str | None, now: datetime) -> bool:
        spec = self.spec
        return (
            self.active(now)
            and spec.endpoint in ("*", endpoint)
            and (spec.ig_user_id is None or spec.ig_user_id == ig_user_id)
        )

    def remaining(self, now: datetime) -> timedelta:
        return max(self.ends_at - max(now, self.started_at), timedelta(0))

    def regain_minutes(self, now: datetime) -> int:
        return max(1, math.ceil(self.remaining(now).total_seconds() / 60))

    def end(self, now: datetime) -> None:
        if self.active(now):
            self.ends_at = now
            self.ended_early_at = now

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            **self.spec.model_dump(mode="json", exclude_none=True),
            "code": self.spec.kind.code,
            "started_at": self.started_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "ended_early_at": self.ended_early_at.isoformat() if self.ended_early_at else None,
            "active": self.active(now),
            "remaining_seconds": round(self.remaining(now).total_seconds(), 3) if self.active(now) else 0,
            "hits": self.hits,
        }

    def error(self, ig_user_id: str | None, now: datetime) -> GraphError:
        """Meta's answer to a call this outage fails."""
        kind = self.spec.kind
        if kind is OutageKind.UNAVAILABLE:
            error = catalogued(2, message=UNAVAILABLE_MESSAGE, is_transient=True)
        else:
            error = catalogued(kind.code)
        if self.spec.http_status is not None:
            error.http_status = self.spec.http_status
        if kind is OutageKind.APP_THROTTLE:
            error.headers["X-App-Usage"] = app_usage_header(100)
        elif kind is OutageKind.PAGE_THROTTLE:
            error.headers["X-Page-Usage"] = page_usage_header(100)
        elif kind in _BUC_KINDS:
            error.headers["X-Business-Use-Case-Usage"] = buc_header(
                ig_user_id or "0", 100, self.regain_minutes(now)
            )
        return error


@dataclass
class OutageBook:
    outages: list[Outage] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def start(self, spec: OutageSpec, now: datetime) -> Outage:
        outage = Outage(
            id=f"outage-{next(self._ids)}",
            spec=spec,
            started_at=now,
            ends_at=now + timedelta(seconds=spec.seconds),
        )
        self.outages.append(outage)
        return outage

    def get(self, outage_id: str) -> Outage | None:
        return next((outage for outage in self.outages if outage.id == outage_id), None)

    def active(self, now: datetime) -> list[Outage]:
        return [outage for outage in self.outages if outage.active(now)]

    def match(self, endpoint: str, ig_user_id: str | None, now: datetime) -> Outage | None:
        """The outage that fails this call, if any: the oldest unavailable one (a service that is down answers
        before any limiter does), else the oldest throttle."""
        matching = [o for o in self.outages if o.matches(endpoint, ig_user_id, now)]
        return next((o for o in matching if not o.spec.kind.throttle), matching[0] if matching else None)

    def clear(self) -> None:
        self.outages.clear()
