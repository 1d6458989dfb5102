"""One problem-details shape for every error; bad input is a 4xx, never a 500."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from api.crud import accounts as account_crud
from tests.api.helpers import ApiUser, assert_problem


async def test_unknown_route_and_method(alice: ApiUser) -> None:
    assert_problem(await alice.client.get("/v1/nothing-here"), 404, "not_found")
    assert_problem(await alice.client.put("/v1/posts"), 405, "method_not_allowed")


async def test_allow_lists_every_method_of_the_path(app: FastAPI, alice: ApiUser) -> None:
    for path, item in app.openapi()["paths"].items():
        documented = {method.upper() for method in item}
        unused = next(method for method in ("PUT", "PATCH", "DELETE", "POST") if method not in documented)
        url = re.sub(r"\{[^}]+\}", "1", path)
        response = await alice.client.request(unused, url)
        assert_problem(response, 405, "method_not_allowed")
        allowed = set(response.headers["allow"].split(", "))
        assert allowed - {"HEAD"} == documented, (path, response.headers["allow"])


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/posts", "GET, POST"),
        ("PUT", "/v1/posts/7", "GET, PATCH, DELETE"),
        ("PUT", "/v1/media", "GET, POST"),
        ("PATCH", "/v1/media/7", "GET, DELETE"),
        ("PUT", "/v1/accounts/7", "GET, PATCH, DELETE"),
        ("DELETE", "/v1/keys", "GET, POST"),
    ],
)
async def test_allow_on_paths_with_several_methods(
    alice: ApiUser, method: str, path: str, allow: str
) -> None:
    response = await alice.client.request(method, path)
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allow


async def test_malformed_json_is_400(alice: ApiUser) -> None:
    response = await alice.client.post(
        "/v1/posts", content=b'{"account_id": 1,', headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 400, "malformed_json")
    assert body["instance"] == "/v1/posts"
    assert body["title"] == "Bad Request"


_BODY_ROUTES = [
    ("POST", "/v1/posts"),
    ("PATCH", "/v1/posts/1"),
    ("POST", "/v1/posts/1/cancel"),
    ("POST", "/v1/posts/1/publish-now"),
    ("POST", "/v1/posts/1/retry"),
    ("POST", "/v1/accounts"),
    ("POST", "/v1/keys"),
]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"caption": "\xff"}', "byte 0xff at position 13"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply: 100000 levels, the deepest at position 99999"),
        (b'{"account_id": ' + b"7" * 5000 + b"}", "a number at position 15 has more than"),
        (b'{"account_id": 1,', "at position 17"),
    ],
    ids=["bad-utf8", "deep-nesting", "5000-digits", "truncated"],
)
@pytest.mark.parametrize(("method", "path"), _BODY_ROUTES)
async def test_a_body_that_cannot_be_parsed_is_400_malformed_json_with_why(
    alice: ApiUser, method: str, path: str, body: bytes, reason: str
) -> None:
    response = await alice.client.request(
        method, path, content=body, headers={"content-type": "application/json"}
    )
    problem = assert_problem(response, 400, "malformed_json")
    assert problem["detail"].startswith("the request body is not valid JSON: "), problem
    assert reason in problem["detail"], problem
    assert problem["instance"] == path


async def test_a_body_that_is_not_json_is_415(alice: ApiUser) -> None:
    response = await alice.client.post(
        "/v1/accounts", content=b"ig_user_id=1", headers={"content-type": "text/plain"}
    )
    assert_problem(response, 415, "unsupported_content_type")


async def test_a_json_body_that_is_not_an_object_is_422(alice: ApiUser) -> None:
    assert_problem(await alice.client.post("/v1/posts", json=[1, 2]), 422, "validation_error", field="body")


async def test_wrong_types_name_every_field(alice: ApiUser) -> None:
    response = await alice.client.post(
        "/v1/posts", json={"account_id": "one", "type": "VIDEO", "media_ids": "7", "extra": True}
    )
    body = assert_problem(response, 422, "validation_error", field="account_id")
    fields = {error["field"]: error["code"] for error in body["errors"]}
    assert fields == {
        "account_id": "int_parsing",
        "type": "enum",
        "media_ids": "list_type",
        "extra": "extra_forbidden",
    }
    assert all(error["message"] for error in body["errors"])
    assert "one" not in response.text  # the offending input is never echoed back


async def test_nested_fields_are_named_with_their_path(alice: ApiUser) -> None:
    response = await alice.client.post(
        "/v1/posts",
        json={
            "account_id": 1,
            "type": "IMAGE",
            "media_ids": [1],
            "user_tags": [{"username": "ok"}, {"username": "a", "x": 2}],
        },
    )
    assert_problem(response, 422, "validation_error", field="user_tags[1].x")


async def test_an_oversize_body_is_413_before_it_is_read(alice: ApiUser) -> None:
    huge = b'{"caption": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = await alice.client.post(
        "/v1/posts", content=huge, headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload_too_large")


async def test_an_oversize_body_without_length_is_cut_off(alice: ApiUser) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"caption": "'
        for _ in range(64):  # 4 MiB in all, far over the 1 MiB limit
            sent += 1
            yield b"x" * 65536
        yield b'"}'

    response = await alice.client.post(
        "/v1/posts", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload_too_large")
    assert sent < 64, "the body was read to its end instead of being cut off at the limit"


@pytest.mark.parametrize(
    "path", ["/v1/posts/abc", "/v1/posts/0", "/v1/posts/99999999999999999999", "/v1/media/-1"]
)
async def test_ids_that_cannot_exist_are_404(alice: ApiUser, path: str) -> None:
    assert_problem(await alice.client.get(path), 404, "not_found")


@pytest.mark.parametrize("path", ["/v1/posts/424242", "/v1/media/424242", "/v1/accounts/424242"])
async def test_unknown_ids_are_404_with_the_resource_named(alice: ApiUser, path: str) -> None:
    resource = path.split("/")[2].rstrip("s")
    body = assert_problem(await alice.client.get(path), 404, f"{resource}_not_found")
    assert "424242" in body["detail"]


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=201", "limit=x", "status=done", "from=yesterday", "account_id=-1"]
)
async def test_bad_query_parameters_are_422(alice: ApiUser, query: str) -> None:
    response = await alice.client.get(f"/v1/posts?{query}")
    assert_problem(response, 422, "validation_error", field=query.split("=")[0])


@pytest.mark.parametrize(
    "params",
    [
        {"to": "9999-12-31T23:59:59-01:00"},
        {"from": "0001-01-01T00:00:00+01:00"},
        {"from": "2026-01-01T00:00:00Z", "to": "9999-12-31T23:59:59-00:01"},
    ],
)
async def test_times_beyond_the_calendar_in_utc_are_422(alice: ApiUser, params: dict[str, str]) -> None:
    response = await alice.client.get("/v1/posts", params=params)
    body = assert_problem(response, 422, "validation_error", field=list(params)[-1])
    assert [error["code"] for error in body["errors"]] == ["datetime_out_of_range"]


async def test_times_at_the_ends_of_the_calendar_are_fine(alice: ApiUser) -> None:
    params = {"from": "0001-01-01T00:00:00Z", "to": "9999-12-31T23:59:59+01:00"}
    response = await alice.client.get("/v1/posts", params=params)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == []


@pytest.mark.parametrize("cursor", ["garbage", "e30", "WzEsMl0"])
async def test_a_forged_cursor_is_422(alice: ApiUser, cursor: str) -> None:
    assert_problem(
        await alice.client.get(f"/v1/posts?cursor={cursor}"), 422, "invalid_cursor", field="cursor"
    )
    assert_problem(
        await alice.client.get(f"/v1/media?cursor={cursor}"), 422, "invalid_cursor", field="cursor"
    )


async def test_an_unexpected_failure_is_a_problem_too(
    app: FastAPI, alice: ApiUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(account_crud, "list_accounts", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"Authorization": f"Bearer {alice.key}"}
    ) as client:
        response = await client.get("/v1/accounts")
    body = assert_problem(response, 500, "internal_error")
    assert "fire" not in body["detail"]  # internals stay in the log
