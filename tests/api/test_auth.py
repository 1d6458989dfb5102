"""Bearer API keys on every /v1 route; keys made by the admin command, shown once, stored hashed."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import Session

from api import admin
from api.crud.users import authenticate, hash_key
from api.deps import AppServices
from chronogram.db import make_engine
from chronogram.settings import get_settings
from tests.api.helpers import ApiUser, assert_problem


def v1_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every /v1 operation, from the OpenAPI document (which tests elsewhere check against the routes)."""
    return [
        (method.upper(), re.sub(r"\{[a-z_]+\}", "1", path))
        for path, item in app.openapi()["paths"].items()
        if path.startswith("/v1")
        for method in item
    ]


async def test_every_v1_route_is_documented_as_protected(app: FastAPI) -> None:
    spec = app.openapi()
    operations = [
        (path, method, operation)
        for path, item in spec["paths"].items()
        if path.startswith("/v1")
        for method, operation in item.items()
    ]
    # 19, the 11 of /v1/webhooks and /v1/notification-settings, the 5 of schedules and queues, the 5 of /v1/series,
    # the 2 of metrics and optimal times, the 6 of /v1/templates, and the 3 of posts' batches, drafts' scheduling
    # and drafts' deletion, and the schedule filled from the best times
    assert len(operations) == 52
    for path, method, operation in operations:
        assert operation.get("security") == [{"ApiKey": []}], (method, path)
        assert "401" in operation["responses"], (method, path)


async def test_every_v1_route_refuses_a_missing_key(app: FastAPI, anonymous: httpx.AsyncClient) -> None:
    for method, path in v1_routes(app):
        response = await anonymous.request(method, path)
        assert_problem(response, 401, "missing_api_key")
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_every_v1_route_refuses_an_unknown_key(app: FastAPI, anonymous: httpx.AsyncClient) -> None:
    for method, path in v1_routes(app):
        response = await anonymous.request(
            method, path, headers={"Authorization": "Bearer cg_not-a-real-key"}
        )
        assert_problem(response, 401, "invalid_api_key")


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "cg_raw-key-without-scheme", "Bearer "])
async def test_malformed_authorization_headers_are_refused(anonymous: httpx.AsyncClient, header: str) -> None:
    response = await anonymous.get("/v1/posts", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["code"] in ("missing_api_key", "invalid_api_key")


async def test_a_valid_key_is_accepted(alice: ApiUser) -> None:
    response = await alice.client.get("/v1/accounts")
    assert response.status_code == 200
    assert response.json() == {"data": []}


async def test_a_revoked_key_is_refused(
    alice: ApiUser, services: AppServices, anonymous: httpx.AsyncClient
) -> None:
    with services.engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP WHERE key_hash = ?", (hash_key(alice.key),)
        )
    response = await anonymous.get("/v1/posts", headers={"Authorization": f"Bearer {alice.key}"})
    assert_problem(response, 401, "invalid_api_key")


async def test_health_needs_no_key(anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
    ready = await anonymous.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {
        "status": "ok",
        "checks": {"temporal": "ok", "database": "ok", "storage": "ok", "workers": "ok"},
    }


@pytest.fixture
def admin_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "admin.db"
    monkeypatch.setenv("CHRONOGRAM_DATABASE_URL", f"sqlite:///{path}")
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()


def test_create_user_prints_a_key_once_and_stores_only_its_hash(
    admin_database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert admin.main(["create-user", "Carol@Example.com"]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("cg_") and len(key) > 40

    engine = make_engine(f"sqlite:///{admin_database}")
    with Session(engine) as session:
        principal = authenticate(session, key=key)
    assert principal is not None and principal.name == "carol@example.com"
    stored = sqlite3.connect(admin_database).execute("SELECT prefix, key_hash FROM api_keys").fetchall()
    assert stored == [(key[:12], hash_key(key))]
    assert key not in admin_database.read_bytes().decode("latin-1")

    assert admin.main(["create-user", "carol@example.com"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert admin.main(["create-key", "carol@example.com"]) == 0
    second = capsys.readouterr().out.strip()
    assert second != key
    with Session(engine) as session:
        again = authenticate(session, key=second)
    assert again is not None and again.user_id == principal.user_id
    assert admin.main(["create-key", "nobody"]) == 1
    assert admin.main(["create-user", "ab"]) == 2


def test_ensure_dev_user_returns_a_key_only_the_first_time(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'dev.db'}")
    key = admin.ensure_dev_user(engine)
    assert key is not None
    assert admin.ensure_dev_user(engine) is None
    with Session(engine) as session:
        principal = authenticate(session, key=key)
    assert principal is not None and principal.name == "dev"


def test_list_keys_and_revoke_key(admin_database: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert admin.main(["create-user", "dora@example.com"]) == 0
    first = capsys.readouterr().out.strip()
    assert admin.main(["create-key", "Dora@Example.com"]) == 0
    second = capsys.readouterr().out.strip()
    engine = make_engine(f"sqlite:///{admin_database}")
    with Session(engine) as session:
        assert authenticate(session, key=first) is not None  # records its use

    assert admin.main(["list-keys", "DORA@example.com"]) == 0
    out = capsys.readouterr().out
    assert first not in out and second not in out and hash_key(first) not in out
    header, *lines = [line.split("\t") for line in out.splitlines()]
    assert header == ["id", "prefix", "name", "created_at", "last_used_at", "revoked_at"]
    assert [(prefix, name) for _id, prefix, name, *_ in lines] == [
        (first[:12], "created by api.admin"),
        (second[:12], "created by api.admin"),
    ]
    assert lines[0][4] != "-" and lines[1][4] == "-"  # last used: only the first key, so far
    assert lines[0][5] == lines[1][5] == "-"

    assert admin.main(["revoke-key", lines[0][0]]) == 0
    assert f"API key {lines[0][0]} ({first[:12]}...) revoked at" in capsys.readouterr().err
    with Session(engine) as session:
        assert authenticate(session, key=first) is None
        assert authenticate(session, key=second) is not None
    assert admin.main(["revoke-key", lines[0][0]]) == 0  # again: nothing changes
    assert admin.main(["list-keys", "dora@example.com"]) == 0
    revoked = [line.split("\t") for line in capsys.readouterr().out.splitlines()[1:]]
    assert revoked[0][5] != "-" and revoked[1][5] == "-"

    assert admin.main(["revoke-key", "999999"]) == 1
    assert "no API key 999999" in capsys.readouterr().err
    assert admin.main(["list-keys", "nobody"]) == 1
    assert admin.main(["list-keys", "ab"]) == 2
    with pytest.raises(SystemExit):
        admin.main(["revoke-key", "not-a-number"])
