"""A post's insights after publishing (GET /v1/posts/{id}/metrics) and an account's best times to post
(GET /v1/accounts/{id}/optimal-times). Routes only route: the work is in api.use_cases.insights."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import OwnedAccountDep, OwnedPostDep, ServicesDep
from api.openapi import problems
from api.schemas.insights import OptimalTimes, PostMetricsOut
from api.use_cases import insights

router = APIRouter(tags=["insights"], responses=problems(401))


@router.get(
    "/v1/posts/{post_id}/metrics",
    response_model=PostMetricsOut,
    summary="A published post's insights over time",
    description="Instagram's insights of the post (reach, likes, comments, saved, shares, views, "
    "total_interactions; stories have no likes, comments or saved), read 1 hour, 24 hours and 7 days after it "
    "was published. A reading Instagram had no data for, or refused, keeps its `error_code` instead of values; "
    "it never changes the post's status. A post that is not published has no readings.",
    responses=problems(404, 422),
)
async def get_post_metrics(post: OwnedPostDep, services: ServicesDep) -> PostMetricsOut:
    return await insights.post_metrics(services, post)


@router.get(
    "/v1/accounts/{account_id}/optimal-times",
    response_model=OptimalTimes,
    summary="The best weekdays and hours to post",
    description="The top 5 weekday-and-hour slots, in `time_zone`, from the account's published posts' "
    "insights: each post's `total_interactions` at its latest reading (7 d, else 24 h, else 1 h) divided by the "
    "mean of the account's posts read at the same age; a slot's `score` is (sum of its posts' ratios + 2) / "
    "(its posts + 2), so 1.0 is a typical post and a slot with few posts is pulled towards 1.0; `confidence` is "
    "posts / (posts + 2). With fewer than 10 posts with readings, the slots come from the hours the account's "
    "followers were online over the last 30 days (Instagram's `online_followers`, kept 6 hours): `score` is "
    "the followers online then relative to a typical hour, `posts` is 0 and `confidence` at most 0.5. Instagram "
    "has no such data for accounts with fewer than 100 followers: then `source` is `history` or `none`.",
    responses=problems(404, 422),
)
async def get_optimal_times(
    account: OwnedAccountDep,
    services: ServicesDep,
    time_zone: Annotated[
        str,
        Query(
            min_length=1,
            max_length=64,
            description="IANA time zone of the slots, e.g. Europe/Paris (default UTC)",
        ),
    ] = "UTC",
) -> OptimalTimes:
    return await insights.optimal_times(services, account, time_zone)
