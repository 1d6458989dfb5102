"""``/_sandbox/*``: control and ground truth for tests and benchmarks. Never part of Meta's surface."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sandbox.config import SandboxConfig
from sandbox.containers import apply_container_fault
from sandbox.faults import CONTAINER_ACTIONS, FaultSpec
from sandbox.nodes import ground_truth_container, ground_truth_media
from sandbox.outages import Outage, OutageSpec
from sandbox.state import SandboxState

router = APIRouter(prefix="/_sandbox", tags=["sandbox"])


def get_state(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


StateDep = Annotated[SandboxState, Depends(get_state)]


class AccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=30)
    ig_user_id: str | None = Field(default=None, pattern=r"^\d{5,20}$")
    access_token: str | None = Field(default=None, min_length=8)
    token_expires_in_seconds: float | None = Field(default=None, gt=0)
    quota_total: int | None = Field(default=None, ge=0)
    image_processing_seconds: float | None = Field(default=None, ge=0)
    video_processing_seconds: float | None = Field(default=None, ge=0)
    carousel_processing_seconds: float | None = Field(default=None, ge=0)


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    access_token: str | None = Field(default=None, min_length=8)
    expires_in_seconds: float | None = Field(default=None, gt=0)
    # Lifetime kinds (overridden by expires_in_seconds): "long" (config long_lived_token_seconds), "short" (a token
    # from the authorization window, for ig_exchange_token; config short_lived_token_seconds) or "never".
    lifetime: Literal["long", "short", "never"] = "never"
    scopes: list[str] | None = Field(default=None, description="default: every Instagram Login permission")


class TokenRevoke(BaseModel):
    access_token: str


class ScopeRemoval(BaseModel):
    access_token: str
    scope: str


class ClockChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    advance_seconds: float | None = None
    set: datetime | None = None
    freeze: bool | None = None


def _token_json(state: SandboxState, value: str) -> dict[str, Any]:
    token = state.tokens[value]
    return {
        "ig_user_id": token.ig_user_id,
        "access_token": token.value,
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        "short_lived": token.short_lived,
        "scopes": token.scopes,
    }


@router.get("/health")
async def health() -> dict[str, bool]:
    return {"ok": True}


@router.post("/accounts", status_code=status.HTTP_201_CREATED)
async def create_account(body: AccountCreate, state: StateDep) -> dict[str, Any]:
    """Create a test account and its first token."""
    try:
        account, token = state.add_account(
            username=body.username,
            ig_user_id=body.ig_user_id,
            access_token=body.access_token,
            expires_in=None
            if body.token_expires_in_seconds is None
            else timedelta(seconds=body.token_expires_in_seconds),
            quota_total=body.quota_total,
            image_processing_seconds=body.image_processing_seconds,
            video_processing_seconds=body.video_processing_seconds,
            carousel_processing_seconds=body.carousel_processing_seconds,
        )
    except ValueError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    return account.public() | _token_json(state, token.value)


@router.get("/accounts")
async def list_accounts(state: StateDep) -> dict[str, Any]:
    return {"data": [account.public() for account in state.accounts.values()]}


@router.post("/accounts/{ig_user_id}/tokens", status_code=status.HTTP_201_CREATED)
async def issue_token(ig_user_id: str, body: TokenCreate, state: StateDep) -> dict[str, Any]:
    if ig_user_id not in state.accounts:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such account")
    seconds = body.expires_in_seconds
    if seconds is None and body.lifetime != "never":
        config = state.config
        seconds = (
            config.short_lived_token_seconds if body.lifetime == "short" else config.long_lived_token_seconds
        )
    expires_in = None if seconds is None else timedelta(seconds=seconds)
    try:
        token = state.issue_token(
            ig_user_id,
            access_token=body.access_token,
            expires_in=expires_in,
            short_lived=body.lifetime == "short",
            scopes=body.scopes,
        )
    except ValueError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    return _token_json(state, token.value)


@router.post("/tokens/revoke")
async def revoke_token(body: TokenRevoke, state: StateDep) -> dict[str, bool]:
    """Later calls with this token get 190/460 (session invalidated)."""
    token = state.tokens.get(body.access_token)
    if token is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such token")
    token.revoked = True
    return {"success": True}


@router.post("/tokens/scopes/remove")
async def remove_scope(body: ScopeRemoval, state: StateDep) -> dict[str, Any]:
    """The user withdrew one permission: calls that need it get Meta's 403 permission error from now on."""
    token = state.tokens.get(body.access_token)
    if token is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such token")
    token.scopes = [scope for scope in token.scopes if scope != body.scope]
    return {"success": True, "scopes": token.scopes}


@router.get("/accounts/{ig_user_id}/media")
async def published_media(ig_user_id: str, state: StateDep) -> dict[str, Any]:
    """Ground truth: everything this account published (stories and deleted posts included), oldest first."""
    if ig_user_id not in state.accounts:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such account")
    items = sorted(
        (m for m in state.media.values() if m.ig_user_id == ig_user_id and m.parent_id is None),
        key=lambda m: (m.published_at, int(m.id)),
    )
    return {"data": [ground_truth_media(state, m) for m in items]}


@router.get("/containers/{container_id}")
async def container_truth(container_id: str, state: StateDep) -> dict[str, Any]:
    container = state.containers.get(container_id)
    if container is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such container")
    return ground_truth_container(state, container)


@router.post("/faults", status_code=status.HTTP_201_CREATED)
async def add_fault(spec: FaultSpec, state: StateDep) -> dict[str, Any]:
    """Arm a fault. Container faults with a ``target_id`` apply to that existing container at once."""
    if spec.action in CONTAINER_ACTIONS and spec.target_id is not None:
        container = state.containers.get(spec.target_id)
        if container is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such container")
        apply_container_fault(container, spec.action, spec.error_subcode)
        fault = state.faults.add(spec)
        fault.consume()
        return fault.to_json()
    return state.faults.add(spec).to_json()


@router.get("/faults")
async def list_faults(state: StateDep) -> dict[str, Any]:
    return {"data": [fault.to_json() for fault in state.faults.faults]}


@router.delete("/faults")
async def clear_faults(state: StateDep) -> dict[str, bool]:
    state.faults.clear()
    return {"success": True}


@router.delete("/faults/{fault_id}")
async def remove_fault(fault_id: str, state: StateDep) -> dict[str, bool]:
    if not state.faults.remove(fault_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such fault")
    return {"success": True}


@router.post("/outages", status_code=status.HTTP_201_CREATED)
async def start_outage(spec: OutageSpec, state: StateDep) -> dict[str, Any]:
    """Fail every matching call for ``seconds`` of sandbox time, then recover by itself."""
    now = state.clock.now()
    return state.outages.start(spec, now).to_json(now)


@router.get("/outages")
async def list_outages(
    state: StateDep, include_over: Annotated[bool, Query(alias="all")] = False
) -> dict[str, Any]:
    """The outages under way (``all=true``: also those over or ended early), oldest first."""
    now = state.clock.now()
    outages = state.outages.outages if include_over else state.outages.active(now)
    return {"data": [outage.to_json(now) for outage in outages]}


@router.get("/outages/{outage_id}")
async def read_outage(outage_id: str, state: StateDep) -> dict[str, Any]:
    return _outage_or_404(state, outage_id).to_json(state.clock.now())


def _outage_or_404(state: SandboxState, outage_id: str) -> Outage:
    outage = state.outages.get(outage_id)
    if outage is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such outage")
    return outage


@router.delete("/outages")
async def end_outages(state: StateDep) -> dict[str, Any]:
    """End every outage under way now; returns the ones ended."""
    now = state.clock.now()
    ended = state.outages.active(now)
    for outage in ended:
        outage.end(now)
    return {"data": [outage.to_json(now) for outage in ended]}


@router.delete("/outages/{outage_id}")
async def end_outage(outage_id: str, state: StateDep) -> dict[str, Any]:
    """End this outage now (a no-op for one already over); it stays listed with ``all=true``."""
    outage = _outage_or_404(state, outage_id)
    now = state.clock.now()
    outage.end(now)
    return outage.to_json(now)


@router.get("/calls")
async def list_calls(
    state: StateDep,
    since: int = 0,
    endpoint: str | None = None,
    ig_user_id: str | None = None,
    outage: str | None = None,
) -> dict[str, Any]:
    """The Graph calls served, oldest first; ``since`` is a ``seq`` to continue from, ``outage`` an outage id."""
    calls = state.calls.query(since=since, endpoint=endpoint, ig_user_id=ig_user_id, outage=outage)
    return {"data": [r.to_json() for r in calls]}


@router.delete("/calls")
async def clear_calls(state: StateDep) -> dict[str, bool]:
    state.calls.clear()
    return {"success": True}


@router.post("/reset")
async def reset(state: StateDep) -> dict[str, bool]:
    """Forget everything but the startup configuration (and the demo account, if enabled)."""
    state.reset()
    return {"success": True}


def _clock_json(state: SandboxState) -> dict[str, Any]:
    return {"now": state.clock.now().isoformat(), "frozen": state.clock.frozen}


@router.get("/clock")
async def read_clock(state: StateDep) -> dict[str, Any]:
    return _clock_json(state)


@router.post("/clock")
async def change_clock(body: ClockChange, state: StateDep) -> dict[str, Any]:
    """Freeze/unfreeze, set, or advance the sandbox clock (in that order when combined)."""
    if body.freeze is True:
        state.clock.freeze()
    elif body.freeze is False:
        state.clock.unfreeze()
    if body.set is not None:
        state.clock.set(body.set)
    if body.advance_seconds is not None:
        state.clock.advance(timedelta(seconds=body.advance_seconds))
    return _clock_json(state)


@router.get("/config")
async def read_config(state: StateDep) -> dict[str, Any]:
    return state.config.model_dump()


@router.patch("/config")
async def change_config(patch: dict[str, Any], state: StateDep) -> dict[str, Any]:
    """Change settings until the next reset, e.g. ``{"republish_mode": "idempotent"}``."""
    try:
        state.config = SandboxConfig.model_validate(state.config.model_dump() | patch)
    except ValidationError as error:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, error.errors(include_url=False, include_context=False)
        ) from None
    return state.config.model_dump()
