"""The OpenAPI page: problem responses documented once (``responses=problems(404, 409)`` on a route), with their
schema under application/problem+json, and FastAPI's default 422 shape replaced by the one actually sent. Every
route that takes a body documents the 400 of a body that cannot be parsed (``malformed_json``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from api.errors import PROBLEM_JSON, Problem
from api.schemas.batch import PostBatch

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# Request bodies a route reads itself (to take several content types), so FastAPI does not list their schemas.
_BODY_MODELS: tuple[type[BaseModel], ...] = (PostBatch,)

_EXAMPLES: dict[int, tuple[str, dict[str, Any]]] = {
    400: (
        "Malformed request (e.g. a body that is not JSON)",
        {
            "code": "malformed_json",
            "detail": "the request body is not valid JSON: Expecting value at position 0",
        },
    ),
    401: (
        "Missing or invalid API key",
        {"code": "invalid_api_key", "detail": "the API key is unknown or revoked"},
    ),
    404: (
        "No such resource, or it belongs to another user",
        {"code": "post_not_found", "detail": "post 42 not found"},
    ),
    409: (
        "The resource's state does not allow this now",
        {
            "code": "post_not_scheduled",
            "detail": "post 42 is publishing: it can only be changed while scheduled",
            "current_status": "publishing",
        },
    ),
    413: (
        "The body or file is too large",
        {"code": "media_too_large", "detail": "images may be at most 8 MB (8388608 bytes)", "field": "file"},
    ),
    415: (
        "Unsupported content type or file format",
        {
            "code": "unsupported_media",
            "detail": "the file is neither an image (JPEG, PNG or WebP) nor a video (MP4 or MOV)",
        },
    ),
    422: (
        "Invalid input; `errors` lists every offending field",
        {
            "code": "validation_error",
            "detail": "caption: 31 hashtags; Instagram allows at most 30",
            "field": "caption",
            "errors": [
                {
                    "field": "caption",
                    "code": "too_many_hashtags",
                    "message": "31 hashtags; Instagram allows at most 30",
                }
            ],
        },
    ),
    502: (
        "Instagram could not be reached",
        {"code": "instagram_unavailable", "detail": "Instagram could not be reached; try again shortly"},
    ),
    503: (
        "A backing service (Temporal, object storage) could not be reached, or the database is busy "
        "(`database_busy`, with `Retry-After`)",
        {"code": "workflows_unavailable", "detail": "the scheduler is unavailable; try again shortly"},
    ),
}


# Every route that checks an API key reads the database, and answers this when no connection is free in time.
_DATABASE_BUSY = (
    "The database is busy (no connection free in time); `Retry-After` says when to try again",
    {"code": "database_busy", "detail": "the database is busy with other requests; try again shortly"},
)


def problems(
    *statuses: int, examples: Mapping[int, tuple[str, dict[str, Any]]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """``examples`` gives a status the route's own description and example instead of the generic ones."""
    return {status: _problem_response(status, (examples or {}).get(status)) for status in statuses}


def _problem_response(status: int, own: tuple[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    description, example = own or _EXAMPLES[status]
    body = {"type": f"urn:chronogram:problem:{example['code']}", "status": status, **example}
    return {"description": description, "content": {PROBLEM_JSON: {"schema": _PROBLEM_REF, "example": body}}}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(problem.pop("$defs", {}))
            components["Problem"] = problem
            for model in _BODY_MODELS:  # bodies that routes read themselves, documented by openapi_extra
                body = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(body.pop("$defs", {}))
                components[model.__name__] = body
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    responses = operation.get("responses", {})
                    if "422" in responses:
                        responses["422"] = _problem_response(422)
                    if "requestBody" in operation and "400" not in responses:
                        responses["400"] = _problem_response(400)
                    if operation.get("security") and "503" not in responses:
                        responses["503"] = _problem_response(503, _DATABASE_BUSY)
            for unused in ("HTTPValidationError", "ValidationError"):
                components.pop(unused, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
