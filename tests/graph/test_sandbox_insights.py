"""The sandbox's insights endpoints over raw HTTP: Meta's shapes, metrics per media product type, periods, the
100-follower rule, the lag, and engagement that follows the audience profile and grows with the media's age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from sandbox.admin_client import SandboxAccount, SandboxAdmin
from sandbox.audience import AudienceProfile, Peak, media_engagement
from tests.graph.test_sandbox import Graph, error_of
from tests.support.media_server import StandardMedia


@pytest.fixture
def raw(http: httpx.AsyncClient, sandbox_url: str, account: SandboxAccount) -> Graph:
    return Graph(http, sandbox_url, account.access_token)


async def publish(raw: Graph, account: SandboxAccount, **data: Any) -> str:
    container_id = await raw.create(account.ig_user_id, **data)
    await raw.wait(container_id, "FINISHED")
    response = await raw.post(f"{account.ig_user_id}/media_publish", creation_id=container_id)
    assert response.status_code == 200, response.text
    media_id: str = response.json()["id"]
    return media_id


def values(body: dict[str, Any]) -> dict[str, Any]:
    return {entry["name"]: entry["values"][0]["value"] for entry in body["data"]}


async def test_media_insights_shape_and_growth_with_age(
    raw: Graph, account: SandboxAccount, admin: SandboxAdmin, media: StandardMedia
) -> None:
    await admin.freeze_clock()
    media_id = await publish(raw, account, image_url=media.square, caption="x")
    metrics = "reach,likes,comments,saved,shares,views,total_interactions"

    # Younger than the lag (10 minutes by default): an empty data set, not zeros.
    early = await raw.get(f"{media_id}/insights", metric=metrics)
    assert early.status_code == 200, early.text
    assert early.json() == {"data": []}

    seen: list[tuple[int, dict[str, Any]]] = []
    for hours in (1, 24, 24 * 7):
        await admin.advance_clock(hours * 3600 - (sum(seen_hours for seen_hours, _ in seen) * 3600))
        response = await raw.get(f"{media_id}/insights", metric=metrics)
        assert response.status_code == 200, response.text
        body = response.json()
        entry = body["data"][0]
        assert entry["period"] == "lifetime"
        assert entry["id"] == f"{media_id}/insights/reach/lifetime"
        assert set(entry) == {"name", "period", "values", "title", "description", "id"}
        numbers = values(body)
        assert list(numbers) == metrics.split(",")
        assert numbers["total_interactions"] == (
            numbers["likes"] + numbers["comments"] + numbers["saved"] + numbers["shares"]
        )
        seen.append((hours, numbers))
    reach = [numbers["reach"] for _, numbers in seen]
    interactions = [numbers["total_interactions"] for _, numbers in seen]
    assert reach[0] < reach[1] < reach[2], reach
    assert interactions[0] < interactions[1] < interactions[2], interactions


async def test_metrics_per_media_product_type_and_unknown_metric(
    raw: Graph, account: SandboxAccount, admin: SandboxAdmin, media: StandardMedia
) -> None:
    await admin.configure(accept_png=True)
    await admin.set_audience(account.ig_user_id, lag_seconds=0)
    story = await publish(raw, account, media_type="STORIES", image_url=media.tall)
    await admin.advance_clock(3600)

    likes = await raw.get(f"{story}/insights", metric="reach,likes")
    assert likes.status_code == 400
    assert error_of(likes) == (100, None)
    assert "likes metric" in likes.json()["error"]["message"]

    ok = await raw.get(f"{story}/insights", metric="reach,replies,shares,total_interactions,views")
    assert ok.status_code == 200, ok.text
    story_values = values(ok.json())
    assert story_values["total_interactions"] == story_values["shares"] + story_values["replies"]

    unknown = await raw.get(f"{story}/insights", metric="impressions")
    assert unknown.status_code == 400
    assert error_of(unknown) == (100, None)
    assert "metric[0] must be one of the following values" in unknown.json()["error"]["message"]

    missing = await raw.get(f"{story}/insights")
    assert error_of(missing) == (100, None)

    # Story metrics last 24 hours.
    await admin.advance_clock(24 * 3600)
    assert (await raw.get(f"{story}/insights", metric="reach")).json() == {"data": []}


async def test_someone_elses_media_is_refused(
    raw: Graph,
    account: SandboxAccount,
    admin: SandboxAdmin,
    media: StandardMedia,
    http: httpx.AsyncClient,
    sandbox_url: str,
) -> None:
    media_id = await publish(raw, account, image_url=media.square)
    other = await admin.create_account("someone_else")
    response = await Graph(http, sandbox_url, other.access_token).get(f"{media_id}/insights", metric="reach")
    assert response.status_code == 400
    assert error_of(response) == (100, 33)


async def test_engagement_follows_the_audience_profile(
    raw: Graph, account: SandboxAccount, admin: SandboxAdmin, media: StandardMedia
) -> None:
    """Posted in the profile's peak hour, a post reaches more than one posted at a quiet hour; the numbers are
    exactly the model's (sandbox.audience)."""
    now = await admin.freeze_clock()
    zone = "America/New_York"
    local = now.astimezone(ZoneInfo(zone))
    peak = Peak(local.weekday(), local.hour, 5.0)
    await admin.set_audience(
        account.ig_user_id,
        timezone=zone,
        followers=20000,
        lag_seconds=0,
        peaks=[{"weekday": peak.weekday, "hour": peak.hour, "weight": peak.weight}],
    )
    at_peak = await publish(raw, account, image_url=media.square)
    await admin.advance_clock(6 * 3600)  # six hours from the peak
    quiet = await publish(raw, account, image_url=media.square)
    await admin.advance_clock(24 * 3600)
    peak_reach = values((await raw.get(f"{at_peak}/insights", metric="reach")).json())["reach"]
    quiet_reach = values((await raw.get(f"{quiet}/insights", metric="reach")).json())["reach"]
    assert peak_reach > 3 * quiet_reach, (peak_reach, quiet_reach)
    model = AudienceProfile(timezone=zone, followers=20000, lag_seconds=0, peaks=[peak])
    expected = media_engagement(
        model, media_id=at_peak, product_type="FEED", published_at=now, now=now + timedelta(hours=30)
    )
    assert peak_reach == expected.reach


async def test_account_insights_periods_ranges_and_shapes(
    raw: Graph, account: SandboxAccount, admin: SandboxAdmin
) -> None:
    now = await admin.freeze_clock()
    user = account.ig_user_id

    response = await raw.get(f"{user}/insights", metric="follower_count,reach", period="day")
    assert response.status_code == 200, response.text
    body = response.json()
    assert [entry["name"] for entry in body["data"]] == ["follower_count", "reach"]
    assert set(body["paging"]) == {"previous", "next"}
    for entry in body["data"]:
        assert entry["period"] == "day"
        assert entry["id"] == f"{user}/insights/{entry['name']}/day"
        ends = [datetime.strptime(v["end_time"], "%Y-%m-%dT%H:%M:%S%z") for v in entry["values"]]
        assert ends, entry
        # Periods end at 07:00 UTC, are over (today is not included), and fall in the default two days.
        assert all(end.hour == 7 and end.minute == 0 for end in ends)
        assert all(now - timedelta(days=2) < end <= now for end in ends)

    online = await raw.get(
        f"{user}/insights",
        metric="online_followers",
        period="lifetime",
        since=int((now - timedelta(days=7)).timestamp()),
        until=int(now.timestamp()),
    )
    assert online.status_code == 200, online.text
    entry = online.json()["data"][0]
    assert entry["period"] == "lifetime"
    assert len(entry["values"]) in (6, 7)
    assert sorted(entry["values"][0]["value"], key=int) == [str(hour) for hour in range(24)]

    total = await raw.get(f"{user}/insights", metric="reach", period="day", metric_type="total_value")
    assert isinstance(total.json()["data"][0]["total_value"]["value"], int)

    # A period that does not fit the metric, no period, a range beyond 30 days, an unknown metric.
    wrong_period = await raw.get(f"{user}/insights", metric="online_followers", period="day")
    assert wrong_period.status_code == 400
    assert "period=lifetime" in wrong_period.json()["error"]["message"]
    assert error_of(await raw.get(f"{user}/insights", metric="reach")) == (100, None)
    too_long = await raw.get(
        f"{user}/insights",
        metric="reach",
        period="day",
        since=int((now - timedelta(days=31)).timestamp()),
        until=int(now.timestamp()),
    )
    assert too_long.status_code == 400
    assert "30 days" in too_long.json()["error"]["message"]
    assert error_of(await raw.get(f"{user}/insights", metric="impressions", period="day")) == (100, None)


async def test_no_follower_metrics_below_100_followers_and_only_the_last_30_days(
    raw: Graph, account: SandboxAccount, admin: SandboxAdmin
) -> None:
    now = await admin.freeze_clock()
    user = account.ig_user_id
    await admin.set_audience(user, followers=99)
    small = await raw.get(f"{user}/insights", metric="follower_count,reach", period="day")
    assert [entry["name"] for entry in small.json()["data"]] == ["reach"]
    online = await raw.get(f"{user}/insights", metric="online_followers", period="lifetime")
    assert online.json()["data"] == []

    await admin.set_audience(user, followers=1000)
    old = await raw.get(
        f"{user}/insights",
        metric="online_followers",
        period="lifetime",
        since=int((now - timedelta(days=45)).timestamp()),
        until=int((now - timedelta(days=25)).timestamp()),
    )
    ends = [datetime.strptime(v["end_time"], "%Y-%m-%dT%H:%M:%S%z") for v in old.json()["data"][0]["values"]]
    assert ends and all(end > now - timedelta(days=30) for end in ends)
    assert all(end.tzinfo is not None and end.astimezone(UTC) < now for end in ends)


async def test_another_users_insights_are_refused(raw: Graph, admin: SandboxAdmin) -> None:
    other = await admin.create_account("another_shop")
    response = await raw.get(f"{other.ig_user_id}/insights", metric="reach", period="day")
    assert response.status_code == 400
    assert error_of(response) == (100, 33)
