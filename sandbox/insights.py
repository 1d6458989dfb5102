"""``GET /{ig-media-id}/insights`` and ``GET /{ig-user-id}/insights``, after Meta's Instagram Media Insights and
Instagram Account Insights references: the same shapes, periods and rules, with the synthetic numbers of
sandbox.audience.

Media: ``metric`` is required; each media product type takes its own metrics (FEED: reach, likes, comments,
saved, shares, views, total_interactions; REELS: the same; STORY: reach, shares, views, replies,
total_interactions). Every value is a ``lifetime`` one. A media younger than its account's insights lag, and a
story older than 24 hours, answer an empty data set (Meta: "returns an empty data set instead of 0"); a carousel's
children have no insights.

Account: ``metric`` and ``period`` are required and must fit (follower_count: day; reach: day, week, days_28;
online_followers: lifetime). Values come per 24-hour period ending at 07:00 UTC (Meta: "periods ending on
UTC−07:00"), for the periods inside ``since``/``until`` (UNIX seconds; at most 30 days apart; default the last
two days) that are over by the account's lag (so today is never included). follower_count and online_followers
cover the last 30 days only and are absent for accounts with fewer than 100 followers. An online_followers value
maps the hours 0-23 of its period (hour k starts at end_time − 24 h + k h) to the followers online then.

Assumed (Meta documents the rule, not the wording): the error messages for an unknown metric, a metric the media
product type does not take, a period that does not fit, and a carousel child.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sandbox.audience import (
    AudienceProfile,
    MediaEngagement,
    account_reach,
    media_engagement,
    new_followers,
    online_followers,
)
from sandbox.errors import GraphError, invalid_param, missing_param

if TYPE_CHECKING:
    from sandbox.graph_routes import Call
    from sandbox.state import Media, SandboxState

MEDIA_METRICS: dict[str, tuple[str, ...]] = {
    "FEED": ("reach", "likes", "comments", "saved", "shares", "views", "total_interactions"),
    "REELS": ("reach", "likes", "comments", "saved", "shares", "views", "total_interactions"),
    "STORY": ("reach", "shares", "views", "replies", "total_interactions"),
}
_ALL_MEDIA_METRICS = (
    "reach",
    "likes",
    "comments",
    "saved",
    "shares",
    "views",
    "replies",
    "total_interactions",
)
USER_METRIC_PERIODS: dict[str, tuple[str, ...]] = {
    "follower_count": ("day",),
    "reach": ("day", "week", "days_28"),
    "online_followers": ("lifetime",),
}
_PERIOD_DAYS = {"day": 1, "week": 7, "days_28": 28, "lifetime": 1}
_MIN_FOLLOWERS = 100
_MAX_RANGE = timedelta(days=30)
_STORY_LIFETIME = timedelta(hours=24)
# Periods end at 07:00 UTC (midnight UTC−07:00).
_PERIOD_END_HOUR = 7

_TITLES = {
    "reach": ("Reach", "The number of unique accounts that have seen the content, at least once."),
    "likes": ("Likes", "The number of likes on the content."),
    "comments": ("Comments", "The number of comments on the content."),
    "saved": ("Saved", "The number of saves of the content."),
    "shares": ("Shares", "The number of shares of the content."),
    "views": ("Views", "The number of times the content was played or displayed."),
    "replies": ("Replies", "The number of replies to the story."),
    "total_interactions": (
        "Total interactions",
        "The number of likes, saves, comments and shares on the content, minus the number of unlikes, unsaves "
        "and deleted comments.",
    ),
    "follower_count": ("Follower count", "The number of new followers each day."),
    "online_followers": ("Online followers", "The number of the account's followers online, by hour."),
}


def audience(state: SandboxState, ig_user_id: str) -> AudienceProfile:
    return state.audiences.get(ig_user_id) or AudienceProfile()


async def read_insights(call: Call) -> dict[str, Any]:
    """One path for both nodes, as Meta's: the id says whether it is a media or a user."""
    media = call.state.media.get(str(call.node))
    if media is not None:
        return _media_insights(call, call.own_media())
    return _user_insights(call, call.own_user().ig_user_id)


def _meta_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _entry(name: str, period: str) -> dict[str, Any]:
    title, description = _TITLES[name]
    return {"name": name, "period": period, "title": title, "description": description}


def _metric_list(call: Call) -> list[str]:
    metrics = call.params.get_list("metric")
    if not metrics:
        raise missing_param("metric")
    return [str(metric).strip() for metric in metrics]


# --- media ---------------------------------------------------------------------------------------------------


def _media_insights(call: Call, media: Media) -> dict[str, Any]:
    metrics = _metric_list(call)
    for index, name in enumerate(metrics):
        if name not in _ALL_MEDIA_METRICS:
            raise invalid_param(
                f"metric[{index}] must be one of the following values: {', '.join(_ALL_MEDIA_METRICS)}"
            )
    if media.parent_id is not None:
        raise GraphError(10, "(#10) Insights are not available for media within an album", http_status=400)
    product = media.media_product_type
    allowed = MEDIA_METRICS.get(product, MEDIA_METRICS["FEED"])
    for name in metrics:
        if name not in allowed:
            raise invalid_param(
                f"The Media Insights API does not support the {name} metric for this media product type."
            )
    now = call.state.clock.now()
    profile = audience(call.state, media.ig_user_id)
    lag = timedelta(seconds=profile.lag_seconds)
    if now - media.published_at < lag or (product == "STORY" and now - media.published_at > _STORY_LIFETIME):
        return {"data": []}
    numbers = media_engagement(
        profile, media_id=media.id, product_type=product, published_at=media.published_at, now=now
    )
    data = []
    for name in dict.fromkeys(metrics):
        entry = _entry(name, "lifetime")
        entry["values"] = [{"value": _media_value(numbers, name, product)}]
        entry["id"] = f"{media.id}/insights/{name}/lifetime"
        data.append(entry)
    return {"data": data}


def _media_value(numbers: MediaEngagement, name: str, product: str) -> int:
    if name == "total_interactions":
        return numbers.total_interactions(product)
    value: int = getattr(numbers, name)
    return value


# --- account -------------------------------------------------------------------------------------------------


def _user_insights(call: Call, ig_user_id: str) -> dict[str, Any]:
    metrics = _metric_list(call)
    for index, name in enumerate(metrics):
        if name not in USER_METRIC_PERIODS:
            raise invalid_param(
                f"metric[{index}] must be one of the following values: {', '.join(USER_METRIC_PERIODS)}"
            )
    period = call.params.get_str("period")
    if period is None:
        raise missing_param("period")
    misfits = [name for name in metrics if period not in USER_METRIC_PERIODS[name]]
    if misfits:
        expected = "/".join(USER_METRIC_PERIODS[misfits[0]])
        raise invalid_param(
            f"The following metrics ({', '.join(misfits)}) should be specified with parameter period={expected}"
        )
    total_value = call.params.get_str("metric_type") == "total_value"
    if call.params.get_str("metric_type") not in (None, "time_series", "total_value"):
        raise invalid_param("metric_type must be one of the following values: time_series, total_value")
    now = call.state.clock.now()
    since_ts, until_ts = call.params.get_int("since"), call.params.get_int("until")
    until = datetime.fromtimestamp(until_ts, UTC) if until_ts is not None else now
    since = datetime.fromtimestamp(since_ts, UTC) if since_ts is not None else until - timedelta(days=2)
    if since > until:
        raise invalid_param("The since parameter must be before the until parameter")
    if until - since > _MAX_RANGE:
        raise invalid_param("There cannot be more than 30 days (2592000 s) between since and until")
    profile = audience(call.state, ig_user_id)
    ends = _period_ends(since, until, now - timedelta(seconds=profile.lag_seconds))
    data = []
    for name in dict.fromkeys(metrics):
        if name in ("follower_count", "online_followers"):
            if profile.followers < _MIN_FOLLOWERS:
                continue  # Meta: not available below 100 followers
            metric_ends = [end for end in ends if end > now - _MAX_RANGE]
        else:
            metric_ends = ends
        entry = _entry(name, period)
        peak = profile.max_affinity()
        values = [(end, _user_value(profile, name, period, end, peak)) for end in metric_ends]
        if total_value and name != "online_followers":
            entry["total_value"] = {"value": sum(value for _, value in values if isinstance(value, int))}
        else:
            entry["values"] = [{"value": value, "end_time": _meta_time(end)} for end, value in values]
        entry["id"] = f"{ig_user_id}/insights/{name}/{period}"
        data.append(entry)
    return {"data": data, "paging": _paging(call, since, until)}


def _period_ends(since: datetime, until: datetime, available_until: datetime) -> list[datetime]:
    """The 07:00 UTC instants ending a 24-hour period inside (since, until] that is over by ``available_until``."""
    first = since.astimezone(UTC).replace(hour=_PERIOD_END_HOUR, minute=0, second=0, microsecond=0)
    if first <= since:
        first += timedelta(days=1)
    ends = []
    end = first
    while end <= until and end <= available_until:
        ends.append(end)
        end += timedelta(days=1)
    return ends


def _user_value(
    profile: AudienceProfile, name: str, period: str, end: datetime, peak: float
) -> int | dict[str, int]:
    if name == "online_followers":
        start = end - timedelta(days=1)
        return {
            str(hour): online_followers(profile, start + timedelta(hours=hour), peak) for hour in range(24)
        }
    if name == "follower_count":
        return new_followers(profile, end)
    days = _PERIOD_DAYS[period]
    return sum(account_reach(profile, end - timedelta(days=back)) for back in range(days))


def _paging(call: Call, since: datetime, until: datetime) -> dict[str, str]:
    span = until - since
    base = str(call.request.url.remove_query_params(["since", "until", "access_token"]))
    separator = "&" if "?" in base else "?"

    def page(start: datetime, end: datetime) -> str:
        return f"{base}{separator}since={int(start.timestamp())}&until={int(end.timestamp())}"

    return {"previous": page(since - span, since), "next": page(until, until + span)}
