"""/v1/keys: a user lists, creates and revokes their own API keys. A new key is shown once; a revoked key is
refused by the very next request; another user's key answers 404; the number of active keys is limited."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.engine import Connection

from api import admin
from api.crud.users import hash_key
from api.deps import AppServices
from chronogram.settings import Settings, get_settings
from tests.api.helpers import ApiUser, assert_problem

LISTED_FIELDS = {"id", "name", "prefix", "created_at", "last_used_at", "revoked_at"}


def client_for(app: FastAPI, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {key}"},
    )


async def create_key(user: ApiUser, name: str = "CI pipeline") -> dict[str, Any]:
    response = await user.client.post("/v1/keys", json={"name": name})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def listed(user: ApiUser) -> dict[int, dict[str, Any]]:
    response = await user.client.get("/v1/keys")
    assert response.status_code == 200, response.text
    return {key["id"]: key for key in response.json()["data"]}


async def own_key_id(user: ApiUser) -> int:
    """The id of the key the user's client sends."""
    [key_id] = [key_id for key_id, key in (await listed(user)).items() if key["prefix"] == user.key[:12]]
    return key_id


def when(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value)


@pytest.fixture
def updates_of_api_keys(services: AppServices) -> Iterator[list[str]]:
    """Every UPDATE of api_keys that the app's engine runs while the test does."""
    seen: list[str] = []

    def record(_conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE API_KEYS"):
            seen.append(statement)

    event.listen(services.engine, "before_cursor_execute", record)
    yield seen
    event.remove(services.engine, "before_cursor_execute", record)


async def test_a_key_is_shown_once_listed_without_its_secret_used_and_revoked(
    app: FastAPI, alice: ApiUser
) -> None:
    before = datetime.now(UTC)
    response = await alice.client.post("/v1/keys", json={"name": "  CI pipeline  "})
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    secret = created.pop("key")
    assert secret.startswith("cg_") and len(secret) > 40
    assert set(created) == LISTED_FIELDS
    assert created["name"] == "CI pipeline"  # trimmed
    assert created["prefix"] == secret[:12]
    assert created["last_used_at"] is None and created["revoked_at"] is None
    assert before - timedelta(seconds=1) <= when(created["created_at"]) <= datetime.now(UTC)

    listing = await alice.client.get("/v1/keys")
    assert secret not in listing.text and hash_key(secret) not in listing.text
    keys = {key["id"]: key for key in listing.json()["data"]}
    assert len(keys) == 2  # the one the user was made with, and this one
    assert all(set(key) == LISTED_FIELDS for key in keys.values())
    assert keys[created["id"]] == created

    async with client_for(app, secret) as ci:
        used = datetime.now(UTC)
        assert (await ci.get("/v1/accounts")).status_code == 200
        last_used_at = when((await listed(alice))[created["id"]]["last_used_at"])
        assert used - timedelta(seconds=1) <= last_used_at <= datetime.now(UTC)

        assert (await alice.client.delete(f"/v1/keys/{created['id']}")).status_code == 204
        assert_problem(await ci.get("/v1/accounts"), 401, "invalid_api_key")

    row = (await listed(alice))[created["id"]]  # the revoked key stays, for the audit trail
    revoked_at = when(row["revoked_at"])
    assert revoked_at >= last_used_at
    assert when(row["last_used_at"]) == last_used_at

    again = await alice.client.delete(f"/v1/keys/{created['id']}")
    assert again.status_code == 204  # revoking is idempotent, and keeps the first time
    assert (await listed(alice))[created["id"]]["revoked_at"] == row["revoked_at"]
    assert (await alice.client.get("/v1/accounts")).status_code == 200  # the other key still works


async def test_last_used_at_is_written_at_most_once_a_minute(
    alice: ApiUser, services: AppServices, updates_of_api_keys: list[str]
) -> None:
    assert (await alice.client.get("/v1/accounts")).status_code == 200  # the first use is recorded
    assert len(updates_of_api_keys) == 1
    key_id = await own_key_id(alice)
    first = (await listed(alice))[key_id]["last_used_at"]
    assert first is not None

    for _ in range(5):
        assert (await alice.client.get("/v1/accounts")).status_code == 200
    assert len(updates_of_api_keys) == 1  # within the minute, using the key is a read only
    assert (await listed(alice))[key_id]["last_used_at"] == first

    # A minute later, the next request records the time again.
    with services.engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE api_keys SET last_used_at = ? WHERE id = ?",
            ((datetime.now(UTC) - timedelta(seconds=61)).replace(tzinfo=None).isoformat(" "), key_id),
        )
    updates_of_api_keys.clear()
    assert (await alice.client.get("/v1/accounts")).status_code == 200
    assert len(updates_of_api_keys) == 1
    assert when((await listed(alice))[key_id]["last_used_at"]) > when(first)


async def test_a_failed_last_used_write_does_not_fail_the_request(
    alice: ApiUser, services: AppServices, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(_conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE API_KEYS"):
            raise sqlite3.OperationalError("database is locked")

    def last_used_at() -> Any:
        with services.engine.connect() as connection:
            return connection.exec_driver_sql(
                "SELECT last_used_at FROM api_keys WHERE key_hash = ?", (hash_key(alice.key),)
            ).scalar_one()

    event.listen(services.engine, "before_cursor_execute", refuse)
    try:
        response = await alice.client.get("/v1/accounts")
    finally:
        event.remove(services.engine, "before_cursor_execute", refuse)
    assert response.status_code == 200, response.text
    assert "could not record the use of API key" in caplog.text
    assert alice.key not in caplog.text
    assert last_used_at() is None
    assert (await alice.client.get("/v1/accounts")).status_code == 200  # the next request records it
    assert last_used_at() is not None


async def test_a_user_may_revoke_the_key_sending_the_request(alice: ApiUser) -> None:
    key_id = await own_key_id(alice)
    assert (await alice.client.delete(f"/v1/keys/{key_id}")).status_code == 204
    assert_problem(await alice.client.get("/v1/keys"), 401, "invalid_api_key")


async def test_another_users_keys_are_invisible_and_answer_404(alice: ApiUser, bob: ApiUser) -> None:
    bobs = await create_key(bob, "bob's laptop")
    assert bobs["id"] not in await listed(alice)

    theirs = await alice.client.delete(f"/v1/keys/{bobs['id']}")
    missing = await alice.client.delete("/v1/keys/999999999")
    body = assert_problem(theirs, 404, "key_not_found")
    assert body["detail"] == f"key {bobs['id']} not found"
    assert assert_problem(missing, 404, "key_not_found")["detail"] == "key 999999999 not found"
    assert_problem(await alice.client.delete("/v1/keys/not-a-number"), 404, "not_found")

    assert (await listed(bob))[bobs["id"]]["revoked_at"] is None
    assert (await bob.client.get("/v1/keys")).status_code == 200


async def test_the_number_of_active_keys_is_limited(alice: ApiUser, api_settings: Settings) -> None:
    limit = api_settings.api_max_active_keys_per_user
    assert limit == 20
    # Concurrent requests cannot overshoot the limit together: the user has one key, so 19 more get through.
    responses = await asyncio.gather(
        *(alice.client.post("/v1/keys", json={"name": f"key {n}"}) for n in range(limit + 5))
    )
    assert sorted(response.status_code for response in responses) == [201] * (limit - 1) + [409] * 6
    refused = next(response for response in responses if response.status_code == 409)
    body = assert_problem(refused, 409, "key_limit_reached")
    assert f"{limit} active API keys" in body["detail"]
    keys = await listed(alice)
    assert len(keys) == limit

    # A revoked key no longer counts.
    some = max(keys)  # not the one her client sends
    assert (await alice.client.delete(f"/v1/keys/{some}")).status_code == 204
    await create_key(alice, "one more")
    assert_problem(await alice.client.post("/v1/keys", json={"name": "too many"}), 409, "key_limit_reached")
    assert len(await listed(alice)) == limit + 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": ""}, "string_too_short"),
        ({"name": " \t\n "}, "string_too_short"),
        ({"name": "x" * 101}, "string_too_long"),
        ({"name": "two\nlines"}, "control_characters"),
        ({"name": "a\ttab"}, "control_characters"),
        ({"name": "escape\x1b[31m"}, "control_characters"),
        ({"name": "del\x7f"}, "control_characters"),
        ({"name": "c1\x85control"}, "control_characters"),
        ({}, "missing"),
        ({"name": None}, "string_type"),
        ({"name": 7}, "string_type"),
        ({"name": "ok", "key": "cg_mine"}, "extra_forbidden"),
    ],
)
async def test_bad_key_names_are_refused(alice: ApiUser, body: dict[str, Any], code: str) -> None:
    response = await alice.client.post("/v1/keys", json=body)
    problem = assert_problem(response, 422, "validation_error")
    assert code in [error["code"] for error in problem["errors"]], problem
    assert len(await listed(alice)) == 1


@pytest.mark.parametrize("name", ["x" * 100, "  padded  ", "Clé de Zoé 🔑", "a b"])
async def test_good_key_names_are_kept_trimmed(alice: ApiUser, name: str) -> None:
    assert (await create_key(alice, name))["name"] == name.strip()


async def test_a_key_revoked_by_the_admin_command_is_refused_at_once(
    alice: ApiUser,
    services: AppServices,
    api_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with services.engine.connect() as connection:
        email = connection.exec_driver_sql(
            "SELECT email FROM users WHERE id = ?", (alice.user_id,)
        ).scalar_one()
    monkeypatch.setenv("CHRONOGRAM_DATABASE_URL", api_settings.database_url)
    get_settings.cache_clear()
    try:
        assert admin.main(["list-keys", email]) == 0
        [key_id] = [int(line.split("\t")[0]) for line in capsys.readouterr().out.splitlines()[1:]]
        assert key_id == await own_key_id(alice)
        assert admin.main(["revoke-key", str(key_id)]) == 0
    finally:
        get_settings.cache_clear()
    assert_problem(await alice.client.get("/v1/accounts"), 401, "invalid_api_key")
