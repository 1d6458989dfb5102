"""Tokens in the sandbox and through the client: Instagram Login's exchange and refresh, debug_token, per-token
expiry, revocation and permissions, with Meta's shapes (reference sections 2.2-2.4, 6.3-6.4)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from chronogram.enums import AccountStatusReason
from chronogram.instagram import (
    GraphAuthError,
    GraphClient,
    GraphErrorDetails,
    GraphInvalidRequestError,
    ImageSpec,
    Operation,
    error_for,
)
from sandbox.__main__ import parse_args
from sandbox.admin_client import SandboxAccount, SandboxAdmin
from tests.support.media_server import StandardMedia

PUBLISH_SCOPE = "instagram_business_content_publish"


async def test_a_short_lived_token_is_exchanged_for_a_long_lived_one(
    http: httpx.AsyncClient,
    sandbox_url: str,
    admin: SandboxAdmin,
    account: SandboxAccount,
    graph: GraphClient,
) -> None:
    config = await admin.configure()
    short = await admin.issue_token(account.ig_user_id, lifetime="short")
    # Meta's documented request: GET /access_token?grant_type=ig_exchange_token&client_secret=...&access_token=...
    raw = await http.get(
        f"{sandbox_url}/access_token",
        params={
            "grant_type": "ig_exchange_token",
            "client_secret": config["app_secret"],
            "access_token": short,
        },
    )
    assert raw.status_code == 200, raw.text
    body = raw.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 60 * 86400

    grant = await graph.exchange_instagram_token(access_token=short, client_secret=config["app_secret"])
    assert grant.expires_in == timedelta(days=60) and grant.access_token not in (short, body["access_token"])
    # A long-lived token is not exchanged again; a wrong secret is refused.
    with pytest.raises(GraphInvalidRequestError):
        await graph.exchange_instagram_token(
            access_token=grant.access_token, client_secret=config["app_secret"]
        )
    wrong = await http.get(
        f"{sandbox_url}/access_token",
        params={"grant_type": "ig_exchange_token", "client_secret": "nope", "access_token": short},
    )
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == 1
    logged = json.dumps(await admin.calls())
    assert short not in logged and config["app_secret"] not in logged and grant.access_token not in logged


async def test_refresh_needs_a_long_lived_token_a_day_old_and_unexpired(
    admin: SandboxAdmin, account: SandboxAccount, graph: GraphClient
) -> None:
    long = await admin.issue_token(account.ig_user_id, lifetime="long")
    with pytest.raises(GraphInvalidRequestError):
        await graph.refresh_access_token(access_token=long)  # not 24 h old yet
    await admin.advance_clock(86400)
    grant = await graph.refresh_access_token(access_token=long)
    assert grant.expires_in == timedelta(days=60)
    await admin.advance_clock(61 * 86400)
    with pytest.raises(GraphAuthError) as expired:
        await graph.refresh_access_token(access_token=grant.access_token)
    assert (expired.value.code, expired.value.subcode) == (190, 463)
    assert expired.value.reason is AccountStatusReason.TOKEN_EXPIRED
    short = await admin.issue_token(account.ig_user_id, lifetime="short")
    await admin.advance_clock(1800)
    with pytest.raises(GraphInvalidRequestError):
        await graph.refresh_access_token(
            access_token=short
        )  # short-lived tokens are exchanged, not refreshed


async def test_the_token_lifetime_is_a_command_line_option() -> None:
    args = parse_args(["--token-lifetime-seconds", "30", "--token-refresh-min-age-seconds", "2"])
    assert args.token_lifetime_seconds == 30 and args.token_refresh_min_age_seconds == 2


async def test_debug_token_reports_expiry_scopes_and_validity(
    http: httpx.AsyncClient,
    sandbox_url: str,
    admin: SandboxAdmin,
    account: SandboxAccount,
    graph: GraphClient,
) -> None:
    config = await admin.configure()
    app = {"app_id": config["app_id"], "app_secret": config["app_secret"]}
    token = await admin.issue_token(account.ig_user_id, lifetime="long")
    raw = await http.get(
        f"{sandbox_url}/v25.0/debug_token",
        params={"input_token": token, "access_token": f"{config['app_id']}|{config['app_secret']}"},
    )
    data = raw.json()["data"]
    assert data["is_valid"] is True and data["type"] == "USER" and data["app_id"] == config["app_id"]
    assert {"expires_at", "issued_at", "data_access_expires_at", "scopes", "user_id"} <= set(data)
    assert data["expires_at"] - data["issued_at"] == 60 * 86400

    info = await graph.debug_token(input_token=token, **app)
    assert info.is_valid and info.user_id == account.ig_user_id and PUBLISH_SCOPE in info.scopes
    assert info.expires_at is not None and info.expires_at - datetime.now(UTC) > timedelta(days=59)
    never = await graph.debug_token(input_token=account.access_token, **app)
    assert never.is_valid and never.expires_at is None  # Meta's expires_at 0

    await admin.revoke_token(token)
    revoked = await graph.debug_token(input_token=token, **app)
    assert not revoked.is_valid and revoked.error_code == 190 and revoked.error_subcode == 460
    unknown = await graph.debug_token(input_token="not-a-token-at-all", **app)
    assert not unknown.is_valid and unknown.error_code == 190
    with pytest.raises(GraphAuthError):
        await graph.debug_token(input_token=token, app_id=config["app_id"], app_secret="wrong")


async def test_a_withdrawn_permission_is_a_403_permission_error_not_a_dead_token(
    admin: SandboxAdmin, account: SandboxAccount, graph: GraphClient, media: StandardMedia
) -> None:
    token = await admin.issue_token(account.ig_user_id, lifetime="long")
    await admin.remove_scope(token, PUBLISH_SCOPE)
    # Reads still work with the token.
    await graph.get_publishing_limit(ig_user_id=account.ig_user_id, access_token=token)
    with pytest.raises(GraphAuthError) as refused:
        await graph.create_container(
            ig_user_id=account.ig_user_id, spec=ImageSpec(image_url=media.square), access_token=token
        )
    error = refused.value
    assert (error.http_status, error.code) == (403, 10)
    assert error.reason is AccountStatusReason.PERMISSION_MISSING
    assert error.missing_permission == PUBLISH_SCOPE

    await admin.configure(permission_error_code=200)
    with pytest.raises(GraphAuthError) as specific:
        await graph.create_container(
            ig_user_id=account.ig_user_id, spec=ImageSpec(image_url=media.square), access_token=token
        )
    assert (specific.value.http_status, specific.value.code) == (403, 200)
    assert specific.value.reason is AccountStatusReason.PERMISSION_MISSING


@pytest.mark.parametrize(
    ("code", "subcode", "status", "reason"),
    [
        (190, 463, 400, AccountStatusReason.TOKEN_EXPIRED),
        (190, 460, 400, AccountStatusReason.TOKEN_INVALID),
        (190, None, 400, AccountStatusReason.TOKEN_INVALID),
        (102, None, 400, AccountStatusReason.TOKEN_INVALID),
        (10, None, 403, AccountStatusReason.PERMISSION_MISSING),
        (200, None, 403, AccountStatusReason.PERMISSION_MISSING),
        (299, None, 403, AccountStatusReason.PERMISSION_MISSING),
        (None, None, 403, AccountStatusReason.PERMISSION_MISSING),
    ],
)
def test_auth_errors_say_why(
    code: int | None, subcode: int | None, status: int, reason: AccountStatusReason
) -> None:
    error = error_for(
        GraphErrorDetails(
            operation=Operation.GET_MEDIA, message="x", http_status=status, code=code, subcode=subcode
        )
    )
    assert isinstance(error, GraphAuthError) and error.reason is reason
