"""No user sees or touches another's data: another user's resources answer exactly like missing ones."""

from __future__ import annotations

import re
from typing import Any

import pytest_asyncio
from sqlmodel import Session

from api.deps import AppServices
from chronogram.models import InstagramAccount
from sandbox.admin_client import SandboxAdmin
from tests.api.helpers import ApiUser, connect, schedule_ok, upload_ok

MISSING = 987654321


@pytest_asyncio.fixture
async def alices(alice: ApiUser, sandbox: SandboxAdmin) -> dict[str, Any]:
    account = await connect(alice.client, sandbox)
    media_id = await upload_ok(alice.client)
    post = await schedule_ok(alice.client, account["id"], [media_id])
    return {"account": account, "media": media_id, "post": post["id"]}


def _routes(ids: dict[str, Any]) -> list[tuple[str, str, dict[str, Any] | None]]:
    account, media, post = ids["account"], ids["media"], ids["post"]
    return [
        ("GET", f"/v1/accounts/{account}", None),
        ("DELETE", f"/v1/accounts/{account}", None),
        ("GET", f"/v1/media/{media}", None),
        ("DELETE", f"/v1/media/{media}", None),
        ("GET", f"/v1/posts/{post}", None),
        ("PATCH", f"/v1/posts/{post}", {"caption": "mine now"}),
        ("PATCH", f"/v1/posts/{post}", {"publish_at": "2030-01-01T00:00:00Z"}),
        ("POST", f"/v1/posts/{post}/cancel", None),
        ("POST", f"/v1/posts/{post}/publish-now", None),
        ("POST", f"/v1/posts/{post}/retry", None),
    ]


def _without_ids(body: dict[str, Any], *ids: Any) -> str:
    """The problem detail with the ids masked in its texts only: a number field (the status 404) is never an id,
    even when an id is 404. Whole numbers only: an id of 40 must not turn "ID 404" into "ID4"."""
    wanted = {str(value) for value in ids}

    def masked(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        return re.sub(r"\d+", lambda number: "ID" if number.group() in wanted else number.group(), value)

    return str({key: masked(value) for key, value in body.items() if key != "instance"})


async def test_another_users_resources_are_404_like_missing_ones(
    alice: ApiUser, bob: ApiUser, alices: dict[str, Any]
) -> None:
    theirs = {"account": alices["account"]["id"], "media": alices["media"], "post": alices["post"]}
    missing = {"account": MISSING, "media": MISSING, "post": MISSING}
    for (method, path, body), (_m, missing_path, _b) in zip(_routes(theirs), _routes(missing), strict=True):
        response = await bob.client.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
        reference = await bob.client.request(method, missing_path, json=body)
        assert reference.status_code == 404
        # Same code and wording: nothing tells "exists but not yours" from "does not exist".
        assert _without_ids(response.json(), *theirs.values()) == _without_ids(reference.json(), MISSING)
        assert "mine now" not in response.text

    # Nothing changed for Alice.
    post = (await alice.client.get(f"/v1/posts/{alices['post']}")).json()
    assert post["status"] == "scheduled" and post["caption"] == "Hello"
    assert post["publish_at"] != "2030-01-01T00:00:00Z"
    assert (await alice.client.get(f"/v1/media/{alices['media']}")).status_code == 200
    assert (await alice.client.get(f"/v1/accounts/{alices['account']['id']}")).status_code == 200


async def test_lists_show_only_the_users_own(alice: ApiUser, bob: ApiUser, alices: dict[str, Any]) -> None:
    for path in ("/v1/accounts", "/v1/media", "/v1/posts", f"/v1/posts?account_id={alices['account']['id']}"):
        assert (await bob.client.get(path)).json()["data"] == [], path
        assert (await alice.client.get(path)).json()["data"] != [], path
    assert (await bob.client.get("/v1/posts?status=scheduled")).json()["data"] == []


async def test_connecting_the_same_instagram_account_does_not_touch_anothers(
    bob: ApiUser, alices: dict[str, Any], sandbox: SandboxAdmin, services: AppServices
) -> None:
    ig_user_id = alices["account"]["ig_user_id"]
    token = await sandbox.issue_token(ig_user_id)
    response = await bob.client.post("/v1/accounts", json={"ig_user_id": ig_user_id, "access_token": token})
    assert response.status_code == 201
    assert response.json()["id"] != alices["account"]["id"]
    with Session(services.engine) as session:
        alices_row = session.get(InstagramAccount, alices["account"]["id"])
    assert alices_row is not None and alices_row.access_token(services.cipher).get_secret_value() != token
