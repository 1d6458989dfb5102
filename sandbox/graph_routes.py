"""Meta's Graph API paths for the content-publishing flow (reference sections 3 and 10).

One catch-all route parses the path itself, because Graph paths are positional (``/{version}?/{node}/{edge}``)
and the node can be a user, a container or a media id. Every call goes through the same pipeline:
parameters → call log → outage → token → usage meter → faults → handler → Meta's headers (a throttling
outage fails the call after the token check, an unavailable service before it).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from sandbox import containers, insights
from sandbox.calls import CallRecord
from sandbox.errors import (
    GraphError,
    buc_throttled,
    catalogued,
    invalid_param,
    missing_param,
    unknown_path,
    unsupported_request,
)
from sandbox.faults import FaultAction, FaultSpec
from sandbox.nodes import comment_json, container_json, media_json, user_json
from sandbox.outages import Outage
from sandbox.params import FieldSel, Params, parse_fields, read_params, sanitized, token_from
from sandbox.state import COMMENTS_SCOPE, PUBLISH_SCOPE, Account, Comment, Media, SandboxState
from sandbox.usage import app_usage_header, buc_header

logger = logging.getLogger(__name__)

_VERSION = re.compile(r"^v\d+\.\d+$")
_DEFAULT_PAGE = 25
_MAX_PAGE = 100
_HTML_502 = (
    "<!DOCTYPE html><html><head><title>Error</title></head><body><h1>502 Bad Gateway</h1>"
    "<p>Sorry, something went wrong. We're working on getting this fixed as soon as we can.</p></body></html>"
)
_HTML_504 = "<!DOCTYPE html><html><body><h1>504 Gateway Time-out</h1></body></html>"


@dataclass
class Call:
    request: Request
    state: SandboxState
    params: Params
    node: str | None
    account: Account | None
    fields: tuple[FieldSel, ...] | None

    @property
    def me(self) -> Account:
        assert self.account is not None, "authenticated endpoint without an account"
        return self.account

    def own_user(self) -> Account:
        """The path's ig-user-id must be the token's account (or ``me``), as with Meta."""
        if self.node not in ("me", self.me.ig_user_id):
            raise unsupported_request(self.request.method, str(self.node))
        return self.me

    def own_media(self) -> Media:
        media = self.state.media.get(str(self.node))
        if media is None or media.ig_user_id != self.me.ig_user_id or media.deleted_at is not None:
            raise unsupported_request(self.request.method, str(self.node))
        return media


Handler = Callable[[Call], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Route:
    endpoint: str
    handler: Handler
    node: str | None = None
    authenticated: bool = True


def _resolve(method: str, segments: list[str], state: SandboxState) -> Route | None:
    match method, segments:
        case "GET", ["refresh_access_token"]:
            return Route("token_refresh", _token_refresh, authenticated=False)
        case "GET", ["oauth", "access_token"]:
            return Route("token_exchange", _token_exchange, authenticated=False)
        case "GET", ["access_token"]:
            return Route("token_ig_exchange", _token_ig_exchange, authenticated=False)
        case "GET", ["debug_token"]:
            return Route("debug_token", _debug_token, authenticated=False)
        case "POST", [node, "media"]:
            return Route("media_create", _media_create, node)
        case "GET", [node, "media"]:
            return Route("media_list", _media_list, node)
        case "GET", [node, "stories"]:
            return Route("stories_list", _stories_list, node)
        case "POST", [node, "media_publish"]:
            return Route("media_publish", _media_publish, node)
        case "GET", [node, "content_publishing_limit"]:
            return Route("publishing_limit", _publishing_limit, node)
        case "POST", [node, "comments"]:
            return Route("comments_create", _comments_create, node)
        case "GET", [node, "comments"]:
            return Route("comments_list", _comments_list, node)
        case "GET", [node, "insights"]:
            return Route("insights", insights.read_insights, node)
        case "DELETE", [node]:
            return Route("media_delete", _media_delete, node)
        case "GET", [node]:
            if node in state.containers:
                return Route("container_status", _container_status, node)
            if node in state.media:
                return Route("media_read", _media_read, node)
            return Route("user_read", _user_read, node)
    return None


async def graph_entry(request: Request) -> Response:
    state: SandboxState = request.app.state.sandbox
    started = time.monotonic()
    segments = [segment for segment in request.url.path.split("/") if segment]
    version = state.config.default_api_version
    if segments and _VERSION.match(segments[0]):
        version = segments.pop(0)
    route = _resolve(request.method, segments, state)
    headers = {
        "x-fb-trace-id": secrets.token_urlsafe(8),
        "x-fb-rev": "1020304050",
        "facebook-api-version": version,
        "Cache-Control": "private, no-cache, no-store, must-revalidate",
        "Pragma": "no-cache",
        "Access-Control-Allow-Origin": "*",
    }
    raw: dict[str, Any] = {}
    params_error: GraphError | None = None
    try:
        raw = await read_params(request)
    except GraphError as error:
        params_error = error
    record = state.calls.start(
        method=request.method,
        path=request.url.path,
        endpoint=route.endpoint if route else "unknown",
        params=sanitized(raw),
        now=state.clock.now(),
    )
    response: Response
    try:
        if params_error is not None:
            raise params_error
        if route is None:
            raise unknown_path("/" + "/".join(segments))
        response = await _serve(state, request, route, raw, record, headers)
    except GraphError as error:
        record.error_code, record.error_subcode = error.code, error.subcode
        response = _json(
            error.envelope(headers["x-fb-trace-id"]), error.http_status, headers | error.response_headers()
        )
    record.finished_at = state.clock.now()
    record.duration_ms = round((time.monotonic() - started) * 1000, 1)
    dropped = isinstance(response, _DroppedConnection)
    record.status = None if dropped else response.status_code
    account = state.accounts.get(record.ig_user_id or "")
    if account is not None and not dropped and response.media_type and "json" in response.media_type:
        _usage_headers(state, account, response)
    return response


async def _serve(
    state: SandboxState,
    request: Request,
    route: Route,
    raw: dict[str, Any],
    record: CallRecord,
    headers: dict[str, str],
) -> Response:
    params = Params(raw)
    now = state.clock.now()
    owner = state.token_owner(token_from(request, raw))
    outage = state.outages.match(route.endpoint, owner, now)
    if outage is not None and not outage.spec.kind.throttle:
        raise _outage_failure(outage, record, owner, now)
    account: Account | None = None
    if route.authenticated:
        account = state.authenticate(token_from(request, raw))
        record.ig_user_id = account.ig_user_id
    if outage is not None:
        raise _outage_failure(outage, record, owner, now)
    if account is not None:
        _meter(state, account)
        scope = _REQUIRED_SCOPES.get(route.endpoint)
        if scope is not None:
            state.require_scope(token_from(request, raw), scope)
    call = Call(request, state, params, route.node, account, parse_fields(params.get_str("fields")))
    target = params.get_str("creation_id") if route.endpoint == "media_publish" else route.node
    latency, fault = state.faults.take_request_faults(
        route.endpoint, account.ig_user_id if account else None, target
    )
    if latency:
        await asyncio.sleep(latency)
    if fault is not None:
        record.fault = fault.spec.action.value
        early = await _before(fault.spec, request, account)
        if early is not None:
            return early
    response = _json(await route.handler(call), 200, headers)
    if fault is not None:
        response = await _after(fault.spec, request, account, response)
    return response


def _outage_failure(outage: Outage, record: CallRecord, owner: str | None, now: datetime) -> GraphError:
    """The error for a call an outage fails. It fails before the handler, the meter and the faults: nothing
    is done, counted or consumed, only logged."""
    outage.hits += 1
    record.outage = outage.id
    record.ig_user_id = record.ig_user_id or owner
    return outage.error(record.ig_user_id, now)


def _json(body: dict[str, Any], status: int, headers: dict[str, str]) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        status_code=status,
        media_type="application/json; charset=UTF-8",
        headers=headers,
    )


def _meter(state: SandboxState, account: Account) -> None:
    now = state.clock.now()
    account.meter.record(now)
    budget = state.config.buc_calls_per_hour
    if budget and len(account.meter.calls) > budget:
        raise buc_throttled(account.ig_user_id, account.meter.minutes_to_regain(now, budget))


def _usage_headers(state: SandboxState, account: Account, response: Response) -> None:
    now = state.clock.now()
    budget = state.config.buc_calls_per_hour
    percent = account.meter.percent(now, budget)
    response.headers.setdefault("x-app-usage", app_usage_header(percent))
    response.headers.setdefault(
        "x-business-use-case-usage",
        buc_header(account.ig_user_id, percent, account.meter.minutes_to_regain(now, budget)),
    )


class _DroppedConnection(Response):
    """Starts a response and abandons it, so the server closes the socket mid-body: the client sees a
    connection drop (httpx.RemoteProtocolError) after the request may have taken effect."""

    def __init__(self) -> None:
        super().__init__(status_code=200, media_type="application/json; charset=UTF-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json; charset=UTF-8"),
                    (b"content-length", b"1024"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b'{"id":"', "more_body": True})


async def _hang(request: Request, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.02)


def _fault_error(spec: FaultSpec, account: Account | None, *, default: tuple[int, int | None]) -> GraphError:
    code, subcode = (spec.code, spec.error_subcode) if spec.code is not None else default
    error = catalogued(
        code,
        subcode,
        spec.message,
        http_status=spec.http_status,
        error_type=spec.error_type,
        is_transient=spec.is_transient,
        user_title=spec.error_user_title,
        user_msg=spec.error_user_msg,
    )
    if spec.estimated_time_to_regain_access is not None:
        owner = account.ig_user_id if account else "0"
        error.headers["X-Business-Use-Case-Usage"] = buc_header(
            owner, 100, spec.estimated_time_to_regain_access
        )
    if spec.retry_after_seconds is not None:
        error.headers["Retry-After"] = str(spec.retry_after_seconds)
    return error


async def _before(spec: FaultSpec, request: Request, account: Account | None) -> Response | None:
    if spec.action is FaultAction.ERROR:
        raise _fault_error(spec, account, default=(2, None))
    if spec.action is FaultAction.HTML_502:
        return Response(_HTML_502, status_code=spec.http_status or 502, media_type="text/html; charset=utf-8")
    if spec.action is FaultAction.HANG:
        await _hang(request, spec.wait_seconds)
        return Response(_HTML_504, status_code=504, media_type="text/html; charset=utf-8")
    if spec.action is FaultAction.DROP:
        return _DroppedConnection()
    return None


async def _after(spec: FaultSpec, request: Request, account: Account | None, response: Response) -> Response:
    if spec.action is FaultAction.COMMIT_THEN_DROP:
        return _DroppedConnection()
    if spec.action is FaultAction.COMMIT_THEN_HANG:
        await _hang(request, spec.wait_seconds)
        return response
    if spec.action is FaultAction.COMMIT_THEN_ERROR:
        # The default reproduces Postiz PR #1681: publish went live, the answer said 4/2207051.
        raise _fault_error(spec, account, default=(4, 2207051))
    return response


def _http(state: SandboxState) -> httpx.AsyncClient:
    if state.http is None:
        state.http = httpx.AsyncClient(follow_redirects=True, trust_env=False)
    return state.http


# Handlers


async def _media_create(call: Call) -> dict[str, Any]:
    account = call.own_user()
    return {"id": await containers.create_container(call.state, _http(call.state), account, call.params)}


async def _media_publish(call: Call) -> dict[str, Any]:
    account = call.own_user()
    return {"id": containers.publish(call.state, account, call.params.require_str("creation_id"))}


async def _container_status(call: Call) -> dict[str, Any]:
    container = call.state.containers[str(call.node)]
    if container.ig_user_id != call.me.ig_user_id:
        raise unsupported_request("get", container.id)
    return container_json(call.state, container, call.fields)


async def _media_read(call: Call) -> dict[str, Any]:
    return media_json(call.state, call.own_media(), call.fields)


async def _user_read(call: Call) -> dict[str, Any]:
    return user_json(call.state, call.own_user(), call.fields)


async def _media_delete(call: Call) -> dict[str, Any]:
    media = call.own_media()
    if media.parent_id is not None:
        raise invalid_param("A carousel item cannot be deleted on its own; delete the carousel")
    media.deleted_at = call.state.clock.now()
    return {"success": True}


def _page(call: Call, items: list[Media]) -> dict[str, Any]:
    params = call.params
    since, until = params.get_int("since"), params.get_int("until")
    if since is not None:
        items = [m for m in items if m.published_at.timestamp() >= since]
    if until is not None:
        items = [m for m in items if m.published_at.timestamp() <= until]
    items.sort(key=lambda m: (m.published_at, int(m.id)), reverse=True)
    limit = min(max(params.get_int("limit") or _DEFAULT_PAGE, 1), _MAX_PAGE)
    start = 0
    after = params.get_str("after")
    if after is not None:
        try:
            start = int(base64.urlsafe_b64decode(after.encode()).decode()) + 1
        except ValueError:
            raise invalid_param("Param after is not a valid cursor") from None
    page = items[start : start + limit]
    body: dict[str, Any] = {"data": [media_json(call.state, m, call.fields) for m in page]}
    if page:
        cursor = base64.urlsafe_b64encode(str(start + len(page) - 1).encode()).decode()
        paging: dict[str, Any] = {
            "cursors": {"before": base64.urlsafe_b64encode(str(start).encode()).decode(), "after": cursor}
        }
        if start + len(page) < len(items):
            query = {k: v for k, v in call.request.query_params.items() if k != "access_token"} | {
                "after": cursor
            }
            paging["next"] = str(call.request.url.replace_query_params(**query))
        body["paging"] = paging
    return body


async def _media_list(call: Call) -> dict[str, Any]:
    account = call.own_user()
    items = [
        m
        for m in call.state.media.values()
        if m.ig_user_id == account.ig_user_id
        and m.parent_id is None
        and m.media_product_type != "STORY"
        and m.deleted_at is None
    ]
    return _page(call, items)


async def _stories_list(call: Call) -> dict[str, Any]:
    account = call.own_user()
    cutoff = call.state.clock.now() - timedelta(hours=24)
    items = [
        m
        for m in call.state.media.values()
        if m.ig_user_id == account.ig_user_id and m.media_product_type == "STORY" and m.published_at > cutoff
    ]
    return _page(call, items)


async def _publishing_limit(call: Call) -> dict[str, Any]:
    account = call.own_user()
    state = call.state
    since_ts = call.params.get_int("since")
    since = datetime.fromtimestamp(since_ts, UTC) if since_ts is not None else None
    entry: dict[str, Any] = {}
    for sel in call.fields or (FieldSel("quota_usage"),):
        if sel.name == "quota_usage":
            entry["quota_usage"] = state.quota_usage(account, since)
        elif sel.name == "config":
            entry["config"] = {
                "quota_total": state.quota_total(account),
                "quota_duration": state.config.quota_duration_seconds,
            }
        else:
            raise GraphError(
                100,
                f"(#100) Tried accessing nonexisting field ({sel.name}) on node type (ContentPublishingLimit)",
            )
    return {"data": [entry]}


async def _comments_create(call: Call) -> dict[str, Any]:
    media = call.own_media()
    if media.media_product_type == "STORY":
        raise invalid_param("Comments are not supported on stories")
    message = call.params.require_str("message")
    state = call.state
    comment = Comment(
        id=state.new_comment_id(),
        media_id=media.id,
        text=message,
        username=call.me.username,
        created_at=state.clock.now(),
    )
    state.comments[comment.id] = comment
    media.comments.append(comment.id)
    return {"id": comment.id}


async def _comments_list(call: Call) -> dict[str, Any]:
    media = call.own_media()
    state = call.state
    selection = call.fields or (FieldSel("id"), FieldSel("text"), FieldSel("timestamp"))
    limit = min(max(call.params.get_int("limit") or _DEFAULT_PAGE, 1), _MAX_PAGE)
    comments = [state.comments[cid] for cid in media.comments if cid in state.comments][:limit]
    return {"data": [comment_json(state, comment, selection) for comment in comments]}


# The permission each publishing call needs; reads need only instagram_business_basic, which every token has.
_REQUIRED_SCOPES = {
    "media_create": PUBLISH_SCOPE,
    "media_publish": PUBLISH_SCOPE,
    "comments_create": COMMENTS_SCOPE,
}


def _grant(call: Call, token_value: str | None) -> dict[str, Any]:
    """A new long-lived token for the same account and permissions; the old one stays valid until it expires."""
    state = call.state
    account = state.authenticate(token_value)
    call.account = account
    old = state.tokens[str(token_value)]
    seconds = state.config.long_lived_token_seconds
    token = state.issue_token(account.ig_user_id, expires_in=timedelta(seconds=seconds), scopes=old.scopes)
    return {"access_token": token.value, "token_type": "bearer", "expires_in": seconds}


async def _token_ig_exchange(call: Call) -> dict[str, Any]:
    """Instagram Login's ``GET /access_token?grant_type=ig_exchange_token&client_secret=…&access_token=<short>``
    (reference section 2.2): a short-lived token for a 60-day one."""
    params, config = call.params, call.state.config
    if params.get_str("grant_type") != "ig_exchange_token":
        raise invalid_param("grant_type must be ig_exchange_token")
    if params.get_str("client_secret") != config.app_secret:
        raise GraphError(1, "Error validating client secret.")
    value = token_from(call.request, call.params.values)
    call.state.authenticate(value)
    if not call.state.tokens[str(value)].short_lived:
        raise invalid_param("Only a short-lived access token can be exchanged for a long-lived one")
    return _grant(call, value)


async def _debug_token(call: Call) -> dict[str, Any]:
    """``GET /debug_token?input_token=…`` with an app token ``{app-id}|{app-secret}`` (reference section 2.3).
    An invalid input token is not an HTTP error: ``is_valid`` is false and ``data.error`` says why."""
    state, config = call.state, call.state.config
    if token_from(call.request, call.params.values) != f"{config.app_id}|{config.app_secret}":
        raise GraphError(190, "Invalid OAuth access token - Cannot parse access token")
    value = call.params.get_str("input_token")
    if value is None:
        raise missing_param("input_token")
    token = state.tokens.get(value)
    data: dict[str, Any] = {"app_id": config.app_id, "type": "USER", "application": "Chronogram Sandbox"}
    if token is None:
        unknown = catalogued(190)
        return {
            "data": {
                **data,
                "error": {"code": unknown.code, "message": unknown.message},
                "is_valid": False,
                "scopes": [],
            }
        }
    error: GraphError | None = None
    try:
        state.authenticate(value)
    except GraphError as refused:
        error = refused
    issued = int(token.issued_at.timestamp())
    data |= {
        "data_access_expires_at": issued + 90 * 86400,
        "expires_at": int(token.expires_at.timestamp()) if token.expires_at is not None else 0,
        "is_valid": error is None,
        "issued_at": issued,
        "scopes": list(token.scopes),
        "granular_scopes": [{"scope": scope} for scope in token.scopes],
        "user_id": token.ig_user_id,
    }
    if error is not None:
        data["error"] = {"code": error.code, "message": error.message}
        if error.subcode is not None:
            data["error"]["subcode"] = error.subcode
    return {"data": data}


async def _token_refresh(call: Call) -> dict[str, Any]:
    """Instagram Login's long-lived token refresh: the token must be unexpired and at least 24 h old."""
    if call.params.get_str("grant_type") != "ig_refresh_token":
        raise invalid_param("grant_type must be ig_refresh_token")
    value = token_from(call.request, call.params.values)
    call.state.authenticate(value)
    token = call.state.tokens[str(value)]
    if token.short_lived:
        raise invalid_param(
            "A short-lived access token cannot be refreshed; exchange it for a long-lived one"
        )
    age = call.state.clock.now() - token.issued_at
    if age < timedelta(seconds=call.state.config.token_refresh_min_age_seconds):
        raise invalid_param("The access token can only be refreshed once it is at least 24 hours old")
    return _grant(call, value)


async def _token_exchange(call: Call) -> dict[str, Any]:
    """Facebook Login's ``grant_type=fb_exchange_token`` exchange for a long-lived token."""
    params, config = call.params, call.state.config
    if params.get_str("grant_type") != "fb_exchange_token":
        raise invalid_param("grant_type must be fb_exchange_token")
    if params.get_str("client_id") != config.app_id:
        raise GraphError(101, "Error validating application. Invalid application ID.")
    if params.get_str("client_secret") != config.app_secret:
        raise GraphError(1, "Error validating client secret.")
    exchanged = params.get_str("fb_exchange_token")
    if exchanged is None:
        raise missing_param("fb_exchange_token")
    return _grant(call, exchanged)
