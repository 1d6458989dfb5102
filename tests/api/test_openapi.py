"""The OpenAPI page documents the API as it behaves: examples, problem responses, the key."""

from __future__ import annotations

import httpx
from fastapi import FastAPI


async def test_docs_and_schema_are_served(anonymous: httpx.AsyncClient) -> None:
    docs = await anonymous.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = (await anonymous.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["ApiKey"]["description"],
    }


def test_request_bodies_have_examples(app: FastAPI) -> None:
    schemas = app.openapi()["components"]["schemas"]
    for name in ("PostCreate", "PostUpdate", "AccountCreate", "SignalReason", "RetryRequest", "KeyCreate"):
        assert schemas[name].get("examples"), name
    for name in (
        "PostOut",
        "PostDetail",
        "AccountOut",
        "AccountDetail",
        "MediaOut",
        "KeyOut",
        "KeyCreated",
        "Problem",
    ):
        assert schemas[name].get("examples"), name


def test_errors_are_documented_as_problem_details(app: FastAPI) -> None:
    spec = app.openapi()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, item in spec["paths"].items():
        if not path.startswith("/v1"):
            continue
        for method, operation in item.items():
            assert operation.get("summary"), (method, path)
            errors = {code: r for code, r in operation["responses"].items() if code.startswith(("4", "5"))}
            assert "401" in errors, (method, path)
            for code, response in errors.items():
                content = response["content"]
                assert list(content) == ["application/problem+json"], (method, path, code)
                assert content["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/Problem"
                }
                assert content["application/problem+json"]["example"]["status"] == int(code)


def test_upload_is_documented_as_multipart(app: FastAPI) -> None:
    body = app.openapi()["paths"]["/v1/media"]["post"]["requestBody"]
    assert body["content"]["multipart/form-data"]["schema"]["properties"]["file"]["format"] == "binary"


def test_a_new_key_is_documented_as_shown_once(app: FastAPI) -> None:
    spec = app.openapi()
    schemas = spec["components"]["schemas"]
    assert "shown only now" in schemas["KeyCreated"]["properties"]["key"]["description"].lower()
    assert "key" not in schemas["KeyOut"]["properties"]
    assert not [field for field in schemas["KeyOut"]["properties"] if "hash" in field]
    keys = spec["paths"]["/v1/keys"]
    assert keys["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/KeyList"
    }
    created = keys["post"]["responses"]
    assert created["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/KeyCreated"
    }
    assert created["409"]["content"]["application/problem+json"]["example"]["code"] == "key_limit_reached"
    revoke = spec["paths"]["/v1/keys/{key_id}"]["delete"]["responses"]
    assert {"204", "401", "404"} <= set(revoke)
    assert revoke["404"]["content"]["application/problem+json"]["example"]["code"] == "key_not_found"


def test_every_route_that_takes_a_body_documents_its_malformed_json(app: FastAPI) -> None:
    spec = app.openapi()
    with_body = [
        (method, path)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if "requestBody" in operation
    ]
    assert len(with_body) >= 8, with_body
    for method, path in with_body:
        operation = spec["paths"][path][method]
        assert "400" in operation["responses"], (method, path)
        if "application/json" in operation["requestBody"]["content"]:
            example = operation["responses"]["400"]["content"]["application/problem+json"]["example"]
            assert example["code"] == "malformed_json", (method, path)


def test_the_unsupported_media_example_names_every_accepted_type(app: FastAPI) -> None:
    responses = app.openapi()["paths"]["/v1/media"]["post"]["responses"]
    detail = responses["415"]["content"]["application/problem+json"]["example"]["detail"]
    for accepted in ("JPEG", "PNG", "WebP", "MP4", "MOV"):
        assert accepted in detail, detail
