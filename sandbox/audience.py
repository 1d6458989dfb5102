"""Each account's audience and the synthetic, deterministic engagement the insights endpoints report.

Nothing here is random: a post's numbers are a function of its account's audience profile, the local weekday and
hour it was published at (in the profile's time zone), its media product type, its age and a small, fixed per-media
jitter (a hash of its id). So tests know the right answer: the best times to post are the profile's peaks.

    affinity(w, h)  = BASE_AFFINITY + Σ_peaks weight · exp(−d² / (2 · PEAK_WIDTH_HOURS²))
                      d: hours from the local weekday-hour slot (w, h) to the peak, round the week
    growth(age)     = 1 − exp(−age / GROWTH_HOURS)          strictly increasing: +1 h < +24 h < +7 d
    reach           = followers · reach_rate · affinity · product factor · growth(age − lag) · jitter
    likes, comments, saved, shares, replies = fixed shares of reach; views = 1.6 · reach
    online followers at an instant = followers · online_rate · affinity(its local weekday, hour) / max affinity
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

BASE_AFFINITY = 0.2
PEAK_WIDTH_HOURS = 0.75
GROWTH_HOURS = 18.0
JITTER = 0.05  # ±5 %
WEEK_HOURS = 7 * 24

_PRODUCT_FACTOR = {"FEED": 1.0, "REELS": 1.4, "STORY": 0.5}
# Interactions per account reached.
_LIKE_RATE = 0.06
_COMMENT_RATE = 0.008
_SAVE_RATE = 0.01
_SHARE_RATE = 0.005
_REPLY_RATE = 0.01
_VIEWS_PER_REACH = 1.6
# New followers per day, as a share of the audience, at affinity 1.
_FOLLOW_RATE = 0.002


@dataclass(frozen=True)
class Peak:
    """A time the audience engages most: ``weekday`` 0 (Monday) to 6, ``hour`` 0-23, local to the profile."""

    weekday: int
    hour: int
    weight: float


def _default_peaks() -> list[Peak]:
    # Lunch and evening on weekdays, late morning at weekends; Wednesday and Thursday evenings strongest.
    peaks = [Peak(day, 12, 1.0) for day in range(5)] + [Peak(day, 19, 1.5) for day in range(5)]
    peaks += [Peak(2, 19, 1.0), Peak(3, 19, 0.8), Peak(5, 11, 1.2), Peak(6, 11, 1.1)]
    return peaks


@dataclass
class AudienceProfile:
    timezone: str = "UTC"
    followers: int = 5000
    peaks: list[Peak] = field(default_factory=_default_peaks)
    # Accounts a post reaches, per follower, at affinity 1 (a feed post).
    reach_rate: float = 0.3
    # Followers online at an instant, per follower, at the profile's best hour.
    online_rate: float = 0.25
    # Insights trail the events they count by this much (Meta: up to 48 hours).
    lag_seconds: float = 600.0

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def affinity(self, weekday: int, hour: int) -> float:
        slot = weekday * 24 + hour
        total = BASE_AFFINITY
        for peak in self.peaks:
            distance = abs(slot - (peak.weekday * 24 + peak.hour)) % WEEK_HOURS
            distance = min(distance, WEEK_HOURS - distance)
            total += peak.weight * math.exp(-(distance**2) / (2 * PEAK_WIDTH_HOURS**2))
        return total

    def affinity_at(self, when: datetime) -> float:
        local = when.astimezone(self.zone())
        return self.affinity(local.weekday(), local.hour)

    def max_affinity(self) -> float:
        return max(self.affinity(day, hour) for day in range(7) for hour in range(24))


def growth(age: timedelta) -> float:
    hours = max(age.total_seconds(), 0.0) / 3600
    return 1 - math.exp(-hours / GROWTH_HOURS)


def jitter(media_id: str) -> float:
    digest = hashlib.sha256(media_id.encode()).digest()
    return 1 - JITTER + 2 * JITTER * (int.from_bytes(digest[:4], "big") / 0xFFFFFFFF)


@dataclass(frozen=True)
class MediaEngagement:
    reach: int
    views: int
    likes: int
    comments: int
    saved: int
    shares: int
    replies: int

    def total_interactions(self, product_type: str) -> int:
        if product_type == "STORY":
            return self.shares + self.replies
        return self.likes + self.comments + self.saved + self.shares


def media_engagement(
    profile: AudienceProfile, *, media_id: str, product_type: str, published_at: datetime, now: datetime
) -> MediaEngagement:
    """A media's lifetime numbers as of ``now`` (``lag_seconds`` behind it)."""
    age = now - published_at - timedelta(seconds=profile.lag_seconds)
    reach_full = (
        profile.followers
        * profile.reach_rate
        * profile.affinity_at(published_at)
        * _PRODUCT_FACTOR.get(product_type, 1.0)
        * jitter(media_id)
    )
    reach = reach_full * growth(age)
    return MediaEngagement(
        reach=round(reach),
        views=round(reach * _VIEWS_PER_REACH),
        likes=round(reach * _LIKE_RATE),
        comments=round(reach * _COMMENT_RATE),
        saved=round(reach * _SAVE_RATE),
        shares=round(reach * _SHARE_RATE),
        replies=round(reach * _REPLY_RATE),
    )


def online_followers(profile: AudienceProfile, at: datetime, max_affinity: float | None = None) -> int:
    """Followers online during the hour starting at ``at`` (``max_affinity``: the profile's, if known)."""
    share = profile.affinity_at(at) / (max_affinity or profile.max_affinity())
    return round(profile.followers * profile.online_rate * share)


def new_followers(profile: AudienceProfile, day_end: datetime) -> int:
    """Followers gained in the 24 hours before ``day_end``."""
    start = day_end - timedelta(days=1)
    mean = sum(profile.affinity_at(start + timedelta(hours=h)) for h in range(24)) / 24
    return round(profile.followers * _FOLLOW_RATE * mean)


def account_reach(profile: AudienceProfile, day_end: datetime) -> int:
    """Accounts reached in the 24 hours before ``day_end``: a day's audience, whether or not anything was posted."""
    start = day_end - timedelta(days=1)
    peak = profile.max_affinity()
    online = sum(online_followers(profile, start + timedelta(hours=h), peak) for h in range(24))
    return round(online * profile.reach_rate)
