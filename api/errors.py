"""One error shape for every 4xx and 5xx: RFC 9457 problem details (application/problem+json).

Every problem carries a stable machine-readable ``code`` (clients branch on it, never on ``detail``), a human
``detail``, and for validation the offending ``field`` (and every field in ``errors``). A 409 about a post's
state also says the post's ``current_status``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from api.unparsable_bodies import why_unparsable
from chronogram.enums import PostStatus
from chronogram.post_rules import Violation

log = logging.getLogger("chronogram.api")

PROBLEM_JSON = "application/problem+json"
_TYPE_PREFIX = "urn:chronogram:problem:"


class FieldError(BaseModel):
    field: str | None = Field(
        description="Where in the request: a body path like `user_tags[2].x`, or a parameter"
    )
    code: str = Field(description="Stable machine-readable code of this violation")
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, with Chronogram's extension members."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "urn:chronogram:problem:post_not_scheduled",
                    "title": "Conflict",
                    "status": 409,
                    "detail": "post 42 is already publishing: it can no longer be changed",
                    "instance": "/v1/posts/42/cancel",
                    "code": "post_not_scheduled",
                    "current_status": "publishing",
                }
            ]
        }
    )

    type: str = Field(description="URI identifying the problem type: `urn:chronogram:problem:{code}`")
    title: str = Field(description="The HTTP status phrase")
    status: int
    detail: str = Field(description="What went wrong, for a human")
    instance: str | None = Field(default=None, description="The request path")
    code: str = Field(description="Stable machine-readable code")
    field: str | None = Field(default=None, description="The offending field, for a single-field problem")
    errors: list[FieldError] | None = Field(
        default=None, description="Every violation, for validation problems"
    )
    current_status: PostStatus | None = Field(
        default=None, description="The post's status, when its status is why the request was refused"
    )


class ApiError(Exception):
    """Raised anywhere below a route; the handler turns it into a problem response."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        field: str | None = None,
        errors: Sequence[FieldError] | None = None,
        current_status: PostStatus | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field
        self.errors = list(errors) if errors is not None else None
        self.current_status = current_status
        self.headers = dict(headers or {})


def not_found(resource: str, resource_id: int | str) -> ApiError:
    # The same answer whether the resource does not exist or belongs to someone else: ids are not secrets, but
    # whether another user has one must not be learnable.
    return ApiError(404, f"{resource}_not_found", f"{resource} {resource_id} not found")


def invalid(violations: Sequence[Violation], *, status: int = 422) -> ApiError:
    errors = [FieldError(field=v.field, code=v.code, message=v.message) for v in violations]
    first = violations[0]
    detail = (
        f"{first.field}: {first.message}"
        if len(violations) == 1
        else f"{len(violations)} problems, first {first.field}: {first.message}"
    )
    code = first.code if len(violations) == 1 else "validation_error"
    return ApiError(status, code, detail, field=first.field, errors=errors)


def post_not_in_status(
    post_id: int, current: PostStatus, expected: PostStatus = PostStatus.SCHEDULED
) -> ApiError:
    if expected is PostStatus.SCHEDULED:
        code, why = "post_not_scheduled", "it can only be changed while scheduled"
    else:
        code, why = f"post_not_{expected.value}", f"only a {expected.value} post can be retried"
    return ApiError(409, code, f"post {post_id} is {current.value}: {why}", current_status=current)


def account_disconnecting(account_id: int) -> ApiError:
    return ApiError(
        409,
        "account_disconnecting",
        f"account {account_id} is being disconnected: it takes no new posts, and can be connected again once it "
        "is gone",
    )


def account_needs_reconnect(account_id: int, reason: str | None, detail: str | None) -> ApiError:
    why = f" ({reason}: {detail})" if reason and detail else ""
    return ApiError(
        409,
        "account_needs_reconnect",
        f"account {account_id} needs reconnecting{why}: connect it again (POST /v1/accounts with a new token), "
        "then schedule",
    )


def problem_of(error: ApiError, instance: str | None = None) -> Problem:
    return Problem(
        type=_TYPE_PREFIX + error.code,
        title=_phrase(error.status),
        status=error.status,
        detail=error.detail,
        instance=instance,
        code=error.code,
        field=error.field,
        errors=error.errors,
        current_status=error.current_status,
    )


def problem_response(request: Request | None, error: ApiError) -> JSONResponse:
    body = problem_of(error, request.url.path if request is not None else None)
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True),
        status_code=error.status,
        media_type=PROBLEM_JSON,
        headers=error.headers,
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


# --- handlers ----------------------------------------------------------------------------------------------------

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_content_type",
}


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return problem_response(request, exc)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    # FastAPI answers a JSON body that json.loads raised on with a bare 400, the parser's error as its cause.
    if (
        exc.status_code == 400
        and exc.__cause__ is not None
        and _is_json(request.headers.get("content-type", ""))
    ):
        return problem_response(request, malformed_json(await why_unparsable(request, exc.__cause__)))
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else _phrase(exc.status_code)
    headers = exc.headers
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.method} {request.url.path}"
    elif exc.status_code == 413 and detail == _phrase(413):
        detail = "the request body is too large"
    elif exc.status_code == 405:
        # The router stops at the first route whose path matches: its Allow names that route's methods only.
        headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
    return problem_response(request, ApiError(exc.status_code, code, detail, headers=headers))


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """Every method that some route of the app answers on this path."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    ]


def malformed_json(reason: str) -> ApiError:
    return ApiError(400, "malformed_json", f"the request body is not valid JSON: {reason}")


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return problem_response(request, _from_validation(request, exc.errors()))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        request, ApiError(500, "internal_error", "an unexpected error occurred; it has been logged")
    )


# A connection not free within the pool's timeout, or SQLite's write lock not free within its own: the database
# is overloaded, not broken, and the client may try again shortly.
DATABASE_BUSY_RETRY_AFTER_SECONDS = 1


def database_busy() -> ApiError:
    return ApiError(
        503,
        "database_busy",
        "the database is busy with other requests; try again shortly",
        headers={"Retry-After": str(DATABASE_BUSY_RETRY_AFTER_SECONDS)},
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, sqlalchemy.exc.TimeoutError) or "database is locked" in str(exc):
        log.warning("database busy on %s %s: %s", request.method, request.url.path, exc)
        return problem_response(request, database_busy())
    return await _unexpected_error(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(sqlalchemy.exc.TimeoutError, _database_error)
    app.add_exception_handler(sqlalchemy.exc.OperationalError, _database_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


def _from_validation(request: Request, raw: Sequence[Any]) -> ApiError:
    errors: list[dict[str, Any]] = [dict(item) for item in raw]
    # A malformed id cannot name anything: the same 404 as an unknown one.
    if errors and all(tuple(e.get("loc", ()))[:1] == ("path",) for e in errors):
        return ApiError(404, "not_found", f"no resource at {request.url.path}")
    for error in errors:
        loc = tuple(error.get("loc", ()))
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "invalid JSON")
            position = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
            return malformed_json(f"{reason} at position {position}" if position is not None else reason)
        if loc == ("body",) and error.get("type") == "model_attributes_type":
            content_type = request.headers.get("content-type", "")
            if not _is_json(content_type):
                return ApiError(
                    415,
                    "unsupported_content_type",
                    f"send the body as application/json, not {content_type or 'no Content-Type'}",
                )
            return ApiError(422, "validation_error", "the request body must be a JSON object", field="body")
    return invalid_input(errors)


def invalid_input(errors: Sequence[Any]) -> ApiError:
    """The 422 for a body that does not match its schema, from pydantic's errors (``ValidationError.errors()``,
    locations with or without the leading "body")."""
    fields = [
        FieldError(
            field=_field(tuple(e.get("loc", ()))), code=str(e.get("type", "invalid")), message=e["msg"]
        )
        for e in errors
    ]
    first = fields[0]
    where = f"{first.field}: " if first.field else ""
    detail = f"{where}{first.message}" + (f" (and {len(fields) - 1} more)" if len(fields) > 1 else "")
    return ApiError(422, "validation_error", detail, field=first.field, errors=fields)


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _field(loc: tuple[Any, ...]) -> str | None:
    """('body', 'user_tags', 2, 'x') -> 'user_tags[2].x'; ('query', 'limit') -> 'limit'."""
    parts = loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or (str(loc[0]) if loc else None)
