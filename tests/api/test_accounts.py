"""/v1/accounts: tokens verified with the Graph API, stored encrypted, never returned."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import Session, col, select
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from api import reconciler, temporal_gateway
from api.deps import AppServices
from chronogram.contracts import post_workflow_id
from chronogram.enums import PostStatus
from chronogram.models import InstagramAccount, Post
from sandbox import DEMO_IG_USER_ID
from sandbox.admin_client import SandboxAdmin
from tests.api.helpers import ApiUser, assert_problem, at, connect, schedule, schedule_ok, upload_ok, wait_for


async def test_connect_verifies_and_stores_the_token_encrypted(
    alice: ApiUser, sandbox: SandboxAdmin, services: AppServices
) -> None:
    account = await sandbox.create_account("bakery_connect")
    response = await alice.client.post(
        "/v1/accounts", json={"ig_user_id": account.ig_user_id, "access_token": account.access_token}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {
        "id",
        "ig_user_id",
        "username",
        "connected_at",
        "updated_at",
        "status",
        "status_reason",
        "status_detail",
        "token_expires_at",
        "disconnecting_since",
        "max_lateness_seconds",
    }
    assert body["disconnecting_since"] is None
    assert body["status"] == "active" and body["status_reason"] is None
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
    detail = await alice.client.get(f"/v1/accounts/{account['id']}")
    assert detail.status_code == 200 and detail.json()["disconnecting_since"] is None  # the mark was undone
    assert (await alice.client.get(f"/v1/posts/{post['id']}")).json()["status"] == "scheduled"
    assert (await schedule(alice.client, account["id"], [media_id], publish_at=at(3600))).status_code == 201


async def test_disconnect_racing_new_posts_is_all_or_nothing(
    alice: ApiUser, sandbox: SandboxAdmin, services: AppServices
) -> None:
    # Posts keep arriving while the account is disconnected: each one is either refused (409
    # account_disconnecting) or recorded in time to be cancelled with the others; none is left scheduled on a
    # half-deleted account, and the DELETE never blames a post that is only scheduled.
    account = await connect(alice.client, sandbox)
    media_id = await upload_ok(alice.client)
    before = [(await schedule_ok(alice.client, account["id"], [media_id]))["id"] for _ in range(3)]
    stop = asyncio.Event()
    answers: list[httpx.Response] = []

    async def keep_scheduling() -> None:
        while not stop.is_set():
            answers.append(await schedule(alice.client, account["id"], [media_id], publish_at=at(3600)))

    writers = [asyncio.create_task(keep_scheduling()) for _ in range(3)]
    await asyncio.sleep(0.3)
    response = await alice.client.delete(f"/v1/accounts/{account['id']}")
    stop.set()
    await asyncio.gather(*writers)

    assert response.status_code == 204, response.text
    statuses = {answer.status_code for answer in answers}
    assert statuses <= {201, 409, 422}, [answer.text for answer in answers if answer.status_code >= 500]
    codes = [answer.json()["code"] for answer in answers if answer.status_code == 409]
    assert "account_disconnecting" in codes, "no post arrived while the disconnection was under way"
    # Once the account is gone: "deleted meanwhile" (409), or unknown (422).
    assert set(codes) <= {"account_disconnecting", "reference_gone"}, codes
    for answer in answers:
        if answer.status_code == 422:
            assert answer.json()["errors"][0]["code"] == "unknown_account", answer.text
    assert_problem(await alice.client.get(f"/v1/accounts/{account['id']}"), 404, "account_not_found")
    created = before + [answer.json()["id"] for answer in answers if answer.status_code == 201]
    with Session(services.engine) as session:
        left = session.exec(select(Post).where(col(Post.id).in_(created))).all()
    assert left == []
    for post_id in created:
        description = await services.temporal.get_workflow_handle(post_workflow_id(post_id)).describe()
        assert description.status == WorkflowExecutionStatus.COMPLETED
    assert await sandbox.published(account["ig_user_id"]) == []


async def test_a_disconnecting_account_takes_no_posts_and_cannot_be_reconnected(
    alice: ApiUser, sandbox: SandboxAdmin, services: AppServices
) -> None:
    account = await connect(alice.client, sandbox)
    media_id = await upload_ok(alice.client)
    failed = await schedule_ok(alice.client, account["id"], [media_id], publish_at=at(3600))
    await alice.client.post(f"/v1/posts/{failed['id']}/cancel")
    with Session(services.engine) as session:  # a failed post, and a disconnection under way
        session.execute(update(Post).where(col(Post.id) == failed["id"]).values(status=PostStatus.FAILED))
        session.execute(
            update(InstagramAccount)
            .where(col(InstagramAccount.id) == account["id"])
            .values(disconnecting_since=datetime.now(UTC))
        )
        session.commit()

    assert_problem(
        await schedule(alice.client, account["id"], [media_id], publish_at=at(3600)),
        409,
        "account_disconnecting",
    )
    assert_problem(await alice.client.post(f"/v1/posts/{failed['id']}/retry"), 409, "account_disconnecting")
    token = await sandbox.issue_token(account["ig_user_id"])
    reconnect = await alice.client.post(
        "/v1/accounts", json={"ig_user_id": account["ig_user_id"], "access_token": token}
    )
    assert_problem(reconnect, 409, "account_disconnecting")
    listed = (await alice.client.get("/v1/accounts")).json()["data"]
    assert [item["disconnecting_since"] is not None for item in listed] == [True]
    with Session(services.engine) as session:
        assert session.exec(select(Post).where(Post.account_id == account["id"])).all() != []
        row = session.get(Post, failed["id"])
        assert row is not None and row.status is PostStatus.FAILED

    # DELETE carries it on to the end.
    assert (await alice.client.delete(f"/v1/accounts/{account['id']}")).status_code == 204
    assert_problem(await alice.client.get(f"/v1/accounts/{account['id']}"), 404, "account_not_found")


async def test_a_disconnection_that_cannot_finish_now_is_finished_by_the_reconciler(
    alice: ApiUser, sandbox: SandboxAdmin, services: AppServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = await connect(alice.client, sandbox)
    post = await schedule_ok(
        alice.client, account["id"], [await upload_ok(alice.client)], publish_at=at(3600)
    )

    async def still_running(*_args: object, **_kwargs: object) -> bool:
        return False

    monkeypatch.setattr(temporal_gateway, "wait_closed", still_running)
    response = await alice.client.delete(f"/v1/accounts/{account['id']}")
    assert response.status_code == 202, response.text
    assert response.json()["id"] == account["id"] and response.json()["disconnecting_since"] is not None
    await wait_for(alice.client, post["id"], "cancelled")
    assert_problem(
        await schedule(alice.client, account["id"], [post["media"][0]["media_id"]], publish_at=at(3600)),
        409,
        "account_disconnecting",
    )
    monkeypatch.undo()

    assert account["id"] in await reconciler.finish_disconnections(services)
    assert_problem(await alice.client.get(f"/v1/accounts/{account['id']}"), 404, "account_not_found")
    assert_problem(await alice.client.get(f"/v1/posts/{post['id']}"), 404, "post_not_found")
