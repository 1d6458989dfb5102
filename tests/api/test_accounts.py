"""/v1/accounts: tokens verified with the Graph API, stored encrypted, never returned."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from api import temporal_gateway
from api.deps import AppServices
from chronogram.contracts import post_workflow_id
from chronogram.enums import PostStatus
from chronogram.models import InstagramAccount, Post
from sandbox import DEMO_IG_USER_ID
from sandbox.admin_client import SandboxAdmin
from tests.api.helpers import ApiUser, assert_problem, at, connect, schedule_ok, upload_ok


async def test_connect_verifies_and_stores_the_token_encrypted(
    alice: ApiUser, sandbox: SandboxAdmin, services: AppServices
) -> None:
    account = await sandbox.create_account("bakery_connect")
    response = await alice.client.post(
        "/v1/accounts", json={"ig_user_id": account.ig_user_id, "access_token": account.access_token}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "ig_user_id", "username", "connected_at", "updated_at", "max_lateness_seconds"}
    assert body["ig_user_id"] == account.ig_user_id and body["username"] == "bakery_connect"
    assert account.access_token not in response.text

    with Session(services.engine) as session:
        row = session.get(InstagramAccount, body["id"])
    assert row is not None and row.owner_id == alice.user_id
    assert account.access_token not in row.access_token_ciphertext
    assert row.access_token(services.cipher).get_secret_value() == account.access_token


async def test_connecting_again_replaces_the_token(
    alice: ApiUser, sandbox: SandboxAdmin, services: AppServices
) -> None:
    first = await connect(alice.client, sandbox)
    fresh = await sandbox.issue_token(first["ig_user_id"])
    response = await alice.client.post(
        "/v1/accounts", json={"ig_user_id": first["ig_user_id"], "access_token": fresh}
    )
    assert response.status_code == 200, response.text
    assert response.json()["id"] == first["id"]
    with Session(services.engine) as session:
        row = session.get(InstagramAccount, first["id"])
    assert row is not None and row.access_token(services.cipher).get_secret_value() == fresh
    assert len((await alice.client.get("/v1/accounts")).json()["data"]) == 1


async def test_an_unknown_token_is_refused(alice: ApiUser) -> None:
    response = await alice.client.post(
        "/v1/accounts", json={"ig_user_id": DEMO_IG_USER_ID, "access_token": "not-a-token"}
    )
    assert_problem(response, 422, "instagram_token_rejected", field="access_token")
    assert (await alice.client.get("/v1/accounts")).json()["data"] == []


async def test_a_token_of_another_account_is_refused(alice: ApiUser, sandbox: SandboxAdmin) -> None:
    mine = await sandbox.create_account("mine")
    other = await sandbox.create_account("other")
    response = await alice.client.post(
        "/v1/accounts", json={"ig_user_id": other.ig_user_id, "access_token": mine.access_token}
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] in ("instagram_account_rejected", "instagram_token_rejected")


async def test_instagram_down_is_502(alice: ApiUser, sandbox: SandboxAdmin) -> None:
    account = await sandbox.create_account("down")
    await sandbox.add_fault("html_502", endpoint="user_read", ig_user_id=account.ig_user_id, count=1)
    response = await alice.client.post(
        "/v1/accounts", json={"ig_user_id": account.ig_user_id, "access_token": account.access_token}
    )
    assert_problem(response, 502, "instagram_unavailable")


async def test_bad_account_bodies(alice: ApiUser) -> None:
    for body, field in [
        ({"ig_user_id": "abc", "access_token": "x"}, "ig_user_id"),
        ({"ig_user_id": "1", "access_token": ""}, "access_token"),
        ({"ig_user_id": "1"}, "access_token"),
        ({"ig_user_id": "1", "access_token": "x", "scope": "all"}, "scope"),
    ]:
        response = await alice.client.post("/v1/accounts", json=body)
        assert_problem(response, 422, "validation_error", field=field)


@pytest.mark.parametrize(
    "token",
    ["caf\u00e9", "\U0001f511-token", "\ud800", "line\nbreak", "nul\x00byte", "tab\ttoken", "two words"],
    ids=["accent", "emoji", "lone-surrogate", "newline", "nul", "tab", "space"],
)
async def test_a_token_that_is_not_printable_ascii_is_422_before_instagram(
    alice: ApiUser, sandbox: SandboxAdmin, token: str
) -> None:
    # Graph tokens are printable ASCII; anything else cannot be sent in a header: refused as input, naming the
    # field, instead of a 500 or a 502 "Instagram could not be reached".
    account = await sandbox.create_account("odd_token")
    # Escaped (\uXXXX) as JSON allows, so that a lone surrogate can be sent at all.
    sent = json.dumps({"ig_user_id": account.ig_user_id, "access_token": token})
    response = await alice.client.post(
        "/v1/accounts", content=sent, headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 422, "validation_error", field="access_token")
    assert [error["code"] for error in body["errors"]] == ["invalid_token_characters"]
    assert "printable ASCII" in body["detail"]
    assert (await alice.client.get("/v1/accounts")).json()["data"] == []


async def test_a_token_in_raw_utf8_is_422(alice: ApiUser) -> None:
    body = '{"ig_user_id": "1", "access_token": "t\u00f6ken"}'.encode()
    response = await alice.client.post(
        "/v1/accounts", content=body, headers={"content-type": "application/json"}
    )
    assert_problem(response, 422, "validation_error", field="access_token")


async def test_list_and_get_with_quota(alice: ApiUser, sandbox: SandboxAdmin) -> None:
    first = await connect(alice.client, sandbox)
    second = await connect(alice.client, sandbox)
    listed = (await alice.client.get("/v1/accounts")).json()["data"]
    assert [item["id"] for item in listed] == [first["id"], second["id"]]

    detail = await alice.client.get(f"/v1/accounts/{first['id']}")
    assert detail.status_code == 200
    assert detail.json()["publishing_quota"] == {
        "usage": 0,
        "total": 100,
        "remaining": 100,
        "window_seconds": 86400,
    }
    assert detail.json()["publishing_quota_error"] is None


async def test_quota_unavailable_still_returns_the_account(alice: ApiUser, sandbox: SandboxAdmin) -> None:
    account = await connect(alice.client, sandbox)
    await sandbox.add_fault(
        "error", endpoint="publishing_limit", ig_user_id=account["ig_user_id"], code=2, count=1
    )
    detail = await alice.client.get(f"/v1/accounts/{account['id']}")
    assert detail.status_code == 200
    assert detail.json()["publishing_quota"] is None
    assert detail.json()["publishing_quota_error"]


async def test_disconnect_cancels_scheduled_posts_and_forgets_the_account(
    alice: ApiUser, sandbox: SandboxAdmin, services: AppServices
) -> None:
    account = await connect(alice.client, sandbox)
    media_id = await upload_ok(alice.client)
    posts = [(await schedule_ok(alice.client, account["id"], [media_id]))["id"] for _ in range(2)]

    response = await alice.client.delete(f"/v1/accounts/{account['id']}")
    assert response.status_code == 204, response.text
    assert_problem(await alice.client.get(f"/v1/accounts/{account['id']}"), 404, "account_not_found")
    for post_id in posts:
        assert_problem(await alice.client.get(f"/v1/posts/{post_id}"), 404, "post_not_found")
        description = await services.temporal.get_workflow_handle(post_workflow_id(post_id)).describe()
        assert description.status == WorkflowExecutionStatus.COMPLETED  # cancelled: ended by its workflow
    assert await sandbox.published(account["ig_user_id"]) == []
    # The media stays: it belongs to the user, not the account.
    assert (await alice.client.get(f"/v1/media/{media_id}")).status_code == 200
    assert_problem(await alice.client.delete(f"/v1/accounts/{account['id']}"), 404, "account_not_found")


async def test_disconnect_waits_for_a_post_being_published(
    alice: ApiUser, sandbox: SandboxAdmin, services: AppServices
) -> None:
    account = await connect(alice.client, sandbox)
    post = await schedule_ok(alice.client, account["id"], [await upload_ok(alice.client)])
    with Session(services.engine) as session:  # as the worker marks it when publishing begins
        row = session.exec(select(Post).where(Post.id == post["id"])).one()
        row.status = PostStatus.PUBLISHING
        session.add(row)
        session.commit()
    response = await alice.client.delete(f"/v1/accounts/{account['id']}")
    assert_problem(response, 409, "account_busy")
    assert (await alice.client.get(f"/v1/accounts/{account['id']}")).status_code == 200


async def test_disconnect_while_temporal_refuses_signals_is_503_and_deletes_nothing(
    alice: ApiUser, sandbox: SandboxAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = await connect(alice.client, sandbox)
    media_id = await upload_ok(alice.client)
    post = await schedule_ok(alice.client, account["id"], [media_id], publish_at=at(3600))

    async def unavailable(*_args: object, **_kwargs: object) -> str:
        raise RPCError("simulated: Temporal unavailable", RPCStatusCode.UNAVAILABLE, b"")

    monkeypatch.setattr(temporal_gateway, "signal_post", unavailable)
    response = await alice.client.delete(f"/v1/accounts/{account['id']}")
    assert_problem(response, 503, "workflows_unavailable")
    monkeypatch.undo()
    assert (await alice.client.get(f"/v1/accounts/{account['id']}")).status_code == 200
    assert (await alice.client.get(f"/v1/posts/{post['id']}")).json()["status"] == "scheduled"
