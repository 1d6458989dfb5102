"""Per-account call accounting behind ``X-Business-Use-Case-Usage`` and ``X-App-Usage`` (reference 6.7)."""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

WINDOW = timedelta(hours=1)


@dataclass
class CallMeter:
    """Rolling one-hour window of call times for one account."""

    calls: deque[datetime] = field(default_factory=deque)

    def record(self, now: datetime) -> None:
        self.calls.append(now)
        self._trim(now)

    def _trim(self, now: datetime) -> None:
        while self.calls and self.calls[0] <= now - WINDOW:
            self.calls.popleft()

    def percent(self, now: datetime, budget: int) -> int:
        self._trim(now)
        return 0 if budget <= 0 else len(self.calls) * 100 // budget

    def minutes_to_regain(self, now: datetime, budget: int) -> int:
        """Minutes until the window holds fewer than ``budget`` calls again; 0 when not throttled."""
        self._trim(now)
        if budget <= 0 or len(self.calls) < budget:
            return 0
        # The call that has to age out is the one that brings the count back under the budget.
        pivot = self.calls[len(self.calls) - budget]
        return max(1, math.ceil((pivot + WINDOW - now).total_seconds() / 60))


def buc_header(ig_user_id: str, percent: int, regain_minutes: int) -> str:
    return json.dumps(
        {
            ig_user_id: [
                {
                    "type": "instagram",
                    "call_count": percent,
                    "total_cputime": min(percent, 100) // 10,
                    "total_time": min(percent, 100) // 8,
                    "estimated_time_to_regain_access": regain_minutes,
                }
            ]
        },
        separators=(",", ":"),
    )


def app_usage_header(percent: int) -> str:
    return json.dumps(
        {
            "call_count": min(percent, 100),
            "total_cputime": min(percent, 100) // 10,
            "total_time": min(percent, 100) // 8,
        },
        separators=(",", ":"),
    )


def page_usage_header(percent: int) -> str:
    """``X-Page-Usage``: the same percentages for a Page's rolling 24 h window (Meta's 2016 page-level limits)."""
    return app_usage_header(percent)
