"""A small async client for ``/_sandbox``, for tests and benchmarks that drive the sandbox over HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx


@dataclass(frozen=True)
class SandboxAccount:
    ig_user_id: str
    username: str
    access_token: str


class SandboxAdmin:
    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        self._http = http
        self._base = base_url.rstrip("/") + "/_sandbox"

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._http.request(method, self._base + path, **kwargs)
        response.raise_for_status()
        return response.json()

    async def reset(self) -> None:
        await self._request("POST", "/reset")

    async def create_account(self, username: str, **options: Any) -> SandboxAccount:
        """``options``: ig_user_id, access_token, token_expires_in_seconds, quota_total, *_processing_seconds."""
        body = await self._request("POST", "/accounts", json={"username": username, **options})
        return SandboxAccount(body["ig_user_id"], body["username"], body["access_token"])

    async def issue_token(self, ig_user_id: str, **options: Any) -> str:
        """``options``: access_token, expires_in_seconds, lifetime ("long", "short" or "never"), scopes."""
        body = await self._request("POST", f"/accounts/{ig_user_id}/tokens", json=options)
        token: str = body["access_token"]
        return token

    async def set_audience(self, ig_user_id: str, **profile: Any) -> dict[str, Any]:
        """``profile``: timezone, followers, peaks ([{weekday, hour, weight}]), reach_rate, online_rate, lag_seconds
        (sandbox.audience); what is left out keeps the default."""
        body: dict[str, Any] = await self._request("PUT", f"/accounts/{ig_user_id}/audience", json=profile)
        return body

    async def revoke_token(self, access_token: str) -> None:
        await self._request("POST", "/tokens/revoke", json={"access_token": access_token})

    async def remove_scope(self, access_token: str, scope: str) -> list[str]:
        """Withdraw one permission from the token; returns the permissions it keeps."""
        body = await self._request(
            "POST", "/tokens/scopes/remove", json={"access_token": access_token, "scope": scope}
        )
        scopes: list[str] = body["scopes"]
        return scopes

    async def add_fault(self, action: str, **spec: Any) -> dict[str, Any]:
        fault: dict[str, Any] = await self._request("POST", "/faults", json={"action": action, **spec})
        return fault

    async def faults(self) -> list[dict[str, Any]]:
        body = await self._request("GET", "/faults")
        data: list[dict[str, Any]] = body["data"]
        return data

    async def clear_faults(self) -> None:
        await self._request("DELETE", "/faults")

    async def start_outage(
        self, kind: str = "unavailable", *, seconds: float, **scope: Any
    ) -> dict[str, Any]:
        """Fail every matching call for ``seconds`` of sandbox time. ``kind``: unavailable, app_throttle,
        user_throttle, page_throttle, custom_throttle or buc_throttle; ``scope``: endpoint, ig_user_id,
        http_status."""
        outage: dict[str, Any] = await self._request(
            "POST", "/outages", json={"kind": kind, "seconds": seconds, **scope}
        )
        return outage

    async def outages(self, *, include_over: bool = False) -> list[dict[str, Any]]:
        """The outages under way; with ``include_over``, also those that ended."""
        body = await self._request("GET", "/outages", params={"all": "true"} if include_over else None)
        data: list[dict[str, Any]] = body["data"]
        return data

    async def outage(self, outage_id: str) -> dict[str, Any]:
        outage: dict[str, Any] = await self._request("GET", f"/outages/{outage_id}")
        return outage

    async def end_outage(self, outage_id: str) -> dict[str, Any]:
        """End it now rather than when its time is up."""
        outage: dict[str, Any] = await self._request("DELETE", f"/outages/{outage_id}")
        return outage

    async def end_outages(self) -> list[dict[str, Any]]:
        body = await self._request("DELETE", "/outages")
        data: list[dict[str, Any]] = body["data"]
        return data

    async def calls(self, **filters: Any) -> list[dict[str, Any]]:
        body = await self._request(
            "GET", "/calls", params={k: v for k, v in filters.items() if v is not None}
        )
        data: list[dict[str, Any]] = body["data"]
        return data

    async def published(self, ig_user_id: str) -> list[dict[str, Any]]:
        body = await self._request("GET", f"/accounts/{ig_user_id}/media")
        data: list[dict[str, Any]] = body["data"]
        return data

    async def container(self, container_id: str) -> dict[str, Any]:
        body: dict[str, Any] = await self._request("GET", f"/containers/{container_id}")
        return body

    async def advance_clock(self, seconds: float) -> datetime:
        body = await self._request("POST", "/clock", json={"advance_seconds": seconds})
        return datetime.fromisoformat(body["now"])

    async def freeze_clock(self, frozen: bool = True) -> datetime:
        body = await self._request("POST", "/clock", json={"freeze": frozen})
        return datetime.fromisoformat(body["now"])

    async def configure(self, **changes: Any) -> dict[str, Any]:
        body: dict[str, Any] = await self._request("PATCH", "/config", json=changes)
        return body
