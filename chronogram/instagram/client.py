"""Async client for the Instagram Graph API content-publishing flow.

The client owns no connection pool: it borrows the process's shared ``httpx.AsyncClient``. Every method
takes the account's token as ``access_token=`` and sends it in the ``Authorization`` header, so URLs (which
httpx logs and keeps on its exceptions) stay clean. Failures raise the typed errors of
:mod:`chronogram.instagram.errors`; nothing here retries, because whether a retry is safe depends on the
workflow's state, not on this call.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from chronogram.instagram.breaker import BreakerRegistry, HostBreaker, host_of
from chronogram.instagram.errors import GraphAPIError, GraphErrorDetails, Operation, classify, error_for
from chronogram.instagram.models import (
    Account,
    Comment,
    ContainerRef,
    ContainerSpec,
    ContainerStatus,
    ContainerStatusCode,
    Media,
    MediaRef,
    OnlineFollowers,
    PublishingLimit,
    TokenGrant,
    TokenInfo,
    media_from_wire,
    parse_timestamp,
)
from chronogram.settings import Settings

__all__ = ["MEDIA_FIELDS", "CallHook", "GraphClient"]

logger = logging.getLogger(__name__)

MEDIA_FIELDS = ("id", "media_type", "media_product_type", "permalink", "timestamp", "caption", "shortcode")
_VERSION = re.compile(r"^v\d+\.\d+$")
_SECRET_QUERY = re.compile(r"((?:access_token|fb_exchange_token|client_secret|input_token)=)[^&\s\"']+")


class _RedactSecretsInUrls(logging.Filter):
    """httpx logs every request URL at INFO; the one documented call that needs the token in the query
    (``refresh_access_token``) must not leak it there."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                _SECRET_QUERY.sub(r"\1[redacted]", str(arg)) if isinstance(arg, httpx.URL | str) else arg
                for arg in record.args
            )
        return True


# Told of every call once it is over: its operation, its duration in seconds and its error's kind (None when it
# succeeded). The processes pass their metrics here (chronogram.observability.metrics.count_graph_call).
CallHook = Callable[[Operation, float, str | None], None]


def _install_log_redaction() -> None:
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactSecretsInUrls) for f in httpx_logger.filters):
        httpx_logger.addFilter(_RedactSecretsInUrls())


class GraphClient:
    """Typed calls to ``{base_url}/{api_version}/...`` (graph.facebook.com, graph.instagram.com or the sandbox).

    ``timeout`` bounds every read call; ``publish_timeout`` is longer because a video publish can take a
    while and a publish that times out has an unknown outcome, which is far costlier than waiting.

    With ``breakers`` (the worker's :class:`~chronogram.instagram.breaker.BreakerRegistry`) every call first asks
    its host's circuit breaker; an open breaker raises
    :class:`~chronogram.instagram.breaker.GraphCircuitOpenError` and the call is not sent.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        api_version: str,
        timeout: float = 30.0,
        publish_timeout: float = 90.0,
        connect_timeout: float = 10.0,
        on_call: CallHook | None = None,
        breakers: BreakerRegistry | None = None,
    ) -> None:
        if not _VERSION.match(api_version):
            raise ValueError(f"api_version must look like 'v25.0', got {api_version!r}")
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._api_version = api_version
        self._timeout = httpx.Timeout(timeout, connect=min(connect_timeout, timeout))
        self._publish_timeout = httpx.Timeout(publish_timeout, connect=min(connect_timeout, publish_timeout))
        self._on_call = on_call
        # Every call goes to base_url's host (refresh_access_token included), so one breaker serves them all.
        self._breaker: HostBreaker | None = breakers.for_host(host_of(self._base_url)) if breakers else None
        _install_log_redaction()

    @classmethod
    def from_settings(
        cls,
        http: httpx.AsyncClient,
        settings: Settings,
        *,
        breakers: BreakerRegistry | None = None,
        on_call: CallHook | None = None,
    ) -> GraphClient:
        return cls(
            http,
            base_url=settings.graph_api_base_url,
            api_version=settings.graph_api_version,
            timeout=settings.graph_api_timeout_seconds,
            publish_timeout=settings.graph_api_publish_timeout_seconds,
            breakers=breakers,
            on_call=on_call,
        )

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def api_version(self) -> str:
        return self._api_version

    @property
    def breaker(self) -> HostBreaker | None:
        """The circuit breaker guarding this client's host, if it was given a registry."""
        return self._breaker

    def __repr__(self) -> str:
        return f"GraphClient(base_url={self._base_url!r}, api_version={self._api_version!r})"

    async def create_container(
        self, *, ig_user_id: str, spec: ContainerSpec, access_token: str
    ) -> ContainerRef:
        """``POST /{ig-user-id}/media``. Image URLs are fetched by Meta during this call; videos later."""
        body = await self._call(
            Operation.CREATE_CONTAINER,
            "POST",
            f"{ig_user_id}/media",
            access_token=access_token,
            form=spec.to_params(),
        )
        return ContainerRef(id=self._id(body, Operation.CREATE_CONTAINER))

    async def get_container(self, *, container_id: str, access_token: str) -> ContainerStatus:
        """``GET /{container-id}?fields=id,status_code,status``. ERROR/EXPIRED are data here, see ``.error()``."""
        op = Operation.CONTAINER_STATUS
        body = await self._call(
            op, "GET", container_id, access_token=access_token, params={"fields": "id,status_code,status"}
        )
        try:
            code = ContainerStatusCode(str(body.get("status_code")))
        except ValueError:
            raise self._unexpected(op, f"unknown container status_code {body.get('status_code')!r}") from None
        status = body.get("status")
        return ContainerStatus(
            id=str(body.get("id", container_id)),
            status_code=code,
            status=status if isinstance(status, str) else None,
        )

    async def publish(self, *, ig_user_id: str, container_id: str, access_token: str) -> MediaRef:
        """``POST /{ig-user-id}/media_publish``. Any failure that does not prove "nothing was published" is
        an :class:`~chronogram.instagram.errors.OutcomeUnknownError`: reconcile with :meth:`get_container`."""
        body = await self._call(
            Operation.MEDIA_PUBLISH,
            "POST",
            f"{ig_user_id}/media_publish",
            access_token=access_token,
            form={"creation_id": container_id},
            limits=self._publish_timeout,
        )
        return MediaRef(id=self._id(body, Operation.MEDIA_PUBLISH))

    async def get_media(
        self, *, media_id: str, access_token: str, fields: tuple[str, ...] = MEDIA_FIELDS
    ) -> Media:
        body = await self._call(
            Operation.GET_MEDIA,
            "GET",
            media_id,
            access_token=access_token,
            params={"fields": ",".join(fields)},
        )
        return self._media(body, Operation.GET_MEDIA)

    async def list_media(
        self,
        *,
        ig_user_id: str,
        access_token: str,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 25,
    ) -> list[Media]:
        """The account's most recent media, newest first (one page; stories are not included by Meta)."""
        params = {"fields": ",".join(MEDIA_FIELDS), "limit": str(limit)}
        if since is not None:
            params["since"] = str(int(since.timestamp()))
        if until is not None:
            params["until"] = str(int(until.timestamp()))
        op = Operation.LIST_MEDIA
        body = await self._call(op, "GET", f"{ig_user_id}/media", access_token=access_token, params=params)
        return [self._media(item, op) for item in self._data(body, op)]

    async def create_comment(self, *, media_id: str, message: str, access_token: str) -> Comment:
        """``POST /{ig-media-id}/comments``; returns the comment id. Not idempotent: a failure that does not
        prove otherwise is an OutcomeUnknownError (check :meth:`list_comments` before retrying)."""
        body = await self._call(
            Operation.CREATE_COMMENT,
            "POST",
            f"{media_id}/comments",
            access_token=access_token,
            form={"message": message},
        )
        return Comment(id=self._id(body, Operation.CREATE_COMMENT), text=message)

    async def list_comments(self, *, media_id: str, access_token: str, limit: int = 50) -> list[Comment]:
        op = Operation.LIST_COMMENTS
        body = await self._call(
            op,
            "GET",
            f"{media_id}/comments",
            access_token=access_token,
            params={"fields": "id,text,timestamp,username", "limit": str(limit)},
        )
        comments = []
        for item in self._data(body, op):
            text, username = item.get("text"), item.get("username")
            comments.append(
                Comment(
                    id=str(item["id"]),
                    text=text if isinstance(text, str) else None,
                    timestamp=parse_timestamp(item.get("timestamp")),
                    username=username if isinstance(username, str) else None,
                )
            )
        return comments

    async def get_publishing_limit(
        self, *, ig_user_id: str, access_token: str, since: datetime | None = None
    ) -> PublishingLimit:
        """``GET /{ig-user-id}/content_publishing_limit``; accepts both the ``data[]`` and the bare shape."""
        op = Operation.PUBLISHING_LIMIT
        params = {"fields": "quota_usage,config"}
        if since is not None:
            params["since"] = str(int(since.timestamp()))
        body = await self._call(
            op, "GET", f"{ig_user_id}/content_publishing_limit", access_token=access_token, params=params
        )
        data = body.get("data")
        entry = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else body
        usage = entry.get("quota_usage")
        if not isinstance(usage, int):
            raise self._unexpected(op, "content_publishing_limit without quota_usage")
        config = entry.get("config")
        if not isinstance(config, dict):
            config = {}
        total, duration = config.get("quota_total"), config.get("quota_duration")
        return PublishingLimit(
            quota_usage=usage,
            quota_total=total if isinstance(total, int) else None,
            quota_duration=timedelta(seconds=duration) if isinstance(duration, int) else None,
        )

    async def get_media_insights(
        self, *, media_id: str, access_token: str, metrics: Sequence[str]
    ) -> dict[str, int]:
        """``GET /{ig-media-id}/insights?metric=...``: each lifetime metric's value. Empty when Instagram has no
        data (yet, or any more): it answers an empty data set rather than zeros."""
        op = Operation.MEDIA_INSIGHTS
        body = await self._call(
            op, "GET", f"{media_id}/insights", access_token=access_token, params={"metric": ",".join(metrics)}
        )
        values: dict[str, int] = {}
        for entry in _data_entries(body):
            name, points = entry.get("name"), entry.get("values")
            if isinstance(name, str) and isinstance(points, list) and points and isinstance(points[0], dict):
                value = points[0].get("value")
                if isinstance(value, int) and not isinstance(value, bool):
                    values[name] = value
        return values

    async def get_online_followers(
        self, *, ig_user_id: str, access_token: str, since: datetime, until: datetime
    ) -> list[OnlineFollowers]:
        """``GET /{ig-user-id}/insights?metric=online_followers&period=lifetime``: one value per 24-hour period
        between ``since`` and ``until`` (at most 30 days apart). Empty for accounts below 100 followers."""
        op = Operation.USER_INSIGHTS
        params = {
            "metric": "online_followers",
            "period": "lifetime",
            "since": str(int(since.timestamp())),
            "until": str(int(until.timestamp())),
        }
        body = await self._call(op, "GET", f"{ig_user_id}/insights", access_token=access_token, params=params)
        found: list[OnlineFollowers] = []
        for entry in _data_entries(body):
            points = entry.get("values") if entry.get("name") == "online_followers" else None
            for point in points if isinstance(points, list) else []:
                if not isinstance(point, dict):
                    continue
                end_time, value = parse_timestamp(point.get("end_time")), point.get("value")
                if end_time is None or not isinstance(value, dict):
                    continue
                by_hour = {
                    int(hour): count
                    for hour, count in value.items()
                    if str(hour).isdigit() and 0 <= int(hour) < 24 and isinstance(count, int)
                }
                found.append(OnlineFollowers(end_time=end_time, by_hour=by_hour))
        return found

    async def get_account(self, *, access_token: str, ig_user_id: str | None = None) -> Account:
        """The IG professional account a token acts for.

        With ``ig_user_id`` (Facebook Login, where ``/me`` is the Facebook user) that account is read and
        the token must grant access to it; without it ``/me`` is used (Instagram Login).
        """
        op = Operation.GET_ACCOUNT
        if ig_user_id is not None:
            body = await self._call(
                op, "GET", ig_user_id, access_token=access_token, params={"fields": "id,username"}
            )
            account_id = body.get("id")
        else:
            body = await self._call(
                op, "GET", "me", access_token=access_token, params={"fields": "user_id,username"}
            )
            # Instagram Login's /me "id" is app-scoped; "user_id" is the id content publishing paths take.
            account_id = body.get("user_id") or body.get("id")
        username = body.get("username")
        if account_id is None:
            raise self._unexpected(op, "account without an id")
        return Account(id=str(account_id), username=username if isinstance(username, str) else None)

    async def refresh_access_token(self, *, access_token: str) -> TokenGrant:
        """Instagram Login's ``GET /refresh_access_token?grant_type=ig_refresh_token`` (token ≥ 24 h old).

        Facebook Login Page tokens do not expire and have no refresh call.
        """
        op = Operation.REFRESH_TOKEN
        body = await self._call(
            op,
            "GET",
            "refresh_access_token",
            access_token=access_token,
            params={"grant_type": "ig_refresh_token"},
            versioned=False,
            token_in_query=True,
        )
        return self._grant(body, op)

    async def exchange_instagram_token(self, *, access_token: str, client_secret: str) -> TokenGrant:
        """Instagram Login's ``GET /access_token?grant_type=ig_exchange_token``: a short-lived (1 h) token for a
        long-lived (60 days) one. Documented with the token and the app secret in the query."""
        op = Operation.EXCHANGE_TOKEN
        body = await self._call(
            op,
            "GET",
            "access_token",
            access_token=access_token,
            params={"grant_type": "ig_exchange_token", "client_secret": client_secret},
            versioned=False,
            token_in_query=True,
            secrets=(client_secret,),
        )
        return self._grant(body, op)

    async def exchange_facebook_token(self, *, access_token: str, app_id: str, app_secret: str) -> TokenGrant:
        """Facebook Login's ``GET /oauth/access_token?grant_type=fb_exchange_token``: a short-lived user token for
        a long-lived one (about 60 days). The short-lived token travels as ``fb_exchange_token``."""
        op = Operation.EXCHANGE_TOKEN
        body = await self._call(
            op,
            "GET",
            "oauth/access_token",
            access_token=access_token,
            params={
                "grant_type": "fb_exchange_token",
                "client_id": app_id,
                "client_secret": app_secret,
                "fb_exchange_token": access_token,
            },
            bearer=False,
            secrets=(app_secret,),
        )
        return self._grant(body, op)

    async def debug_token(self, *, input_token: str, app_id: str, app_secret: str) -> TokenInfo:
        """``GET /debug_token?input_token=…`` with the app token ``{app-id}|{app-secret}``: whether the token is
        valid, when it expires, its permissions. An invalid token is an answer here, not an error."""
        op = Operation.DEBUG_TOKEN
        app_token = f"{app_id}|{app_secret}"
        body = await self._call(
            op,
            "GET",
            "debug_token",
            access_token=app_token,
            params={"input_token": input_token},
            secrets=(input_token, app_secret),
        )
        data = body.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("is_valid"), bool):
            raise self._unexpected(op, "debug_token response without data.is_valid")
        raw_error = data.get("error")
        error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
        scopes = data.get("scopes")
        token_type, user_id, message = data.get("type"), data.get("user_id"), error.get("message")
        return TokenInfo(
            is_valid=data["is_valid"],
            expires_at=_unix(data.get("expires_at")),
            data_access_expires_at=_unix(data.get("data_access_expires_at")),
            issued_at=_unix(data.get("issued_at")),
            token_type=token_type if isinstance(token_type, str) else None,
            scopes=tuple(s for s in scopes if isinstance(s, str)) if isinstance(scopes, list) else (),
            user_id=str(user_id) if isinstance(user_id, str | int) else None,
            error_code=error.get("code") if isinstance(error.get("code"), int) else None,
            error_subcode=error.get("subcode") if isinstance(error.get("subcode"), int) else None,
            error_message=message.replace(input_token, "[redacted]") if isinstance(message, str) else None,
        )

    def _grant(self, body: Mapping[str, Any], op: Operation) -> TokenGrant:
        token, expires_in = body.get("access_token"), body.get("expires_in")
        if not isinstance(token, str) or not token:
            raise self._unexpected(op, "token response without access_token")
        token_type = body.get("token_type")
        return TokenGrant(
            access_token=token,
            token_type=token_type if isinstance(token_type, str) else None,
            expires_in=timedelta(seconds=expires_in)
            if isinstance(expires_in, int) and not isinstance(expires_in, bool)
            else None,
        )

    async def _call(self, operation: Operation, method: str, path: str, **options: Any) -> dict[str, Any]:
        """One call, told to the ``on_call`` hook when it is over."""
        if self._on_call is None:
            return await self._request(operation, method, path, **options)
        started = time.monotonic()
        error_kind: str | None = None
        try:
            return await self._request(operation, method, path, **options)
        except GraphAPIError as error:
            error_kind = error.kind.value
            raise
        finally:
            self._on_call(operation, time.monotonic() - started, error_kind)

    async def _request(
        self,
        operation: Operation,
        method: str,
        path: str,
        *,
        access_token: str,
        params: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        limits: httpx.Timeout | None = None,
        versioned: bool = True,
        token_in_query: bool = False,
        bearer: bool = True,
        secrets: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        url = f"{self._base_url}/{self._api_version}/{path}" if versioned else f"{self._base_url}/{path}"
        query = dict(params or {})
        headers = {}
        if token_in_query:
            # Documented as a query parameter for the token endpoints only; see _RedactSecretsInUrls.
            query["access_token"] = access_token
        elif bearer:
            headers["Authorization"] = f"Bearer {access_token}"
        secrets = (access_token, *secrets)
        # Refused (GraphCircuitOpenError) before anything is sent while the host's breaker is open.
        permit = self._breaker.admit(operation) if self._breaker is not None else None
        started = time.monotonic()
        try:
            try:
                response = await self._http.request(
                    method,
                    url,
                    params=query or None,
                    data=dict(form) if form is not None else None,
                    headers=headers,
                    timeout=limits or self._timeout,
                )
            except httpx.HTTPError as exc:
                if permit is not None:
                    permit.record_transport_error(exc)
                error = classify(exc, operation=operation, secrets=secrets)
                logger.info("graph %s %s failed after %.0f ms: %s", method, path, _ms(started), error)
                # Not chained: httpx exceptions keep the request, whose headers carry the token.
                raise error from None
            logger.debug("graph %s %s -> %d in %.0f ms", method, path, response.status_code, _ms(started))
            body = None
            if response.is_success:
                try:
                    body = response.json()
                except ValueError:
                    body = None
            if not isinstance(body, dict) or "error" in body:
                error = classify(response, operation=operation, secrets=secrets)
                if permit is not None:
                    permit.record_error(error)
                raise error
            if permit is not None:
                permit.succeeded()
            return body
        finally:
            if permit is not None:
                permit.release()  # cancelled, or failed in a way that says nothing of the host: no verdict

    def _id(self, body: Mapping[str, Any], operation: Operation) -> str:
        value = body.get("id")
        if not isinstance(value, str | int) or isinstance(value, bool) or not str(value):
            raise self._unexpected(operation, "response without an id")
        return str(value)

    def _data(self, body: Mapping[str, Any], operation: Operation) -> list[Mapping[str, Any]]:
        data = body.get("data")
        if not isinstance(data, list) or not all(isinstance(item, dict) and "id" in item for item in data):
            raise self._unexpected(operation, "list response without data[]")
        return data

    def _media(self, body: Mapping[str, Any], operation: Operation) -> Media:
        if "id" not in body:
            raise self._unexpected(operation, "media without an id")
        return media_from_wire(body)

    @staticmethod
    def _unexpected(operation: Operation, message: str) -> Exception:
        # A 200 we cannot read: Meta answered, so a mutation most likely happened (error_for turns this into
        # OutcomeUnknownError for unsafe operations) and a read can simply be repeated.
        return error_for(GraphErrorDetails(operation=operation, message=message, is_transient=True))


def _unix(value: Any) -> datetime | None:
    """Meta's Unix timestamps; 0 (never) and anything unreadable are None."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return datetime.fromtimestamp(value, UTC)


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000


def _data_entries(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    data = body.get("data")
    return [entry for entry in data if isinstance(entry, dict)] if isinstance(data, list) else []
