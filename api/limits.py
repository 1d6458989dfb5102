"""Request body limits, refused with a problem response before (or while) the body is read.

Per route: JSON bodies get a small limit, the upload route a large one (its own per-kind limits, checked while it
streams, are tighter still). A declared Content-Length over the limit is answered at once, without reading a
byte; a body without one is counted as it arrives and cut off at the limit.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError, problem_response


class BodyTooLarge(HTTPException):
    """An HTTPException, so that FastAPI's body parsing lets it through to the error handlers unchanged."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"the request body is larger than {limit} bytes")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, default_limit: int, limits: Mapping[tuple[str, str], int]) -> None:
        """``limits`` maps (method, path) to a limit that replaces the default for that route."""
        self.app = app
        self.default_limit = default_limit
        self.limits = dict(limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get((scope["method"], scope["path"].rstrip("/")), self.default_limit)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            error = ApiError(413, "payload_too_large", f"the request body is larger than {limit} bytes")
            await problem_response(Request(scope), error)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
