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
    for name in ("PostCreate", "PostUpdate", "AccountCreate", "SignalReason", "RetryRequest"):
        assert schemas[name].get("examples"), name
    for name in ("PostOut", "PostDetail", "AccountOut", "AccountDetail", "MediaOut", "Problem"):
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
