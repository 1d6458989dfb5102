"""The circuit breaker on the real wire: GraphClient against the sandbox's outage switch. The sandbox's call log
(and, for a host that is not there at all, an httpx request hook) counts what was really sent."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest

from chronogram.instagram import (
    BreakerConfig,
    BreakerRegistry,
    BreakerState,
    GraphAuthError,
    GraphCircuitOpenError,
    GraphClient,
    GraphThrottledError,
    GraphTransientError,
    ImageSpec,
    OutcomeUnknownError,
)
from chronogram.settings import Settings
from sandbox.admin_client import SandboxAccount, SandboxAdmin
from tests.graph.conftest import API_VERSION
from tests.graph.helpers import ManualClock, wait_for_status
from tests.support.media_server import StandardMedia

CONFIG = BreakerConfig(failure_threshold=3, open_seconds=10, max_open_seconds=30, half_open_probes=1)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def guarded(http: httpx.AsyncClient, sandbox_url: str, clock: ManualClock) -> GraphClient:
    """A client whose breaker opens after 3 failures, stays open 10 s (then 20, 30), one probe at a time."""
    return GraphClient(
        http,
        base_url=sandbox_url,
        api_version=API_VERSION,
        timeout=5.0,
        breakers=BreakerRegistry(CONFIG, clock=clock),
    )


async def read(graph: GraphClient, account: SandboxAccount) -> None:
    await graph.get_account(access_token=account.access_token, ig_user_id=account.ig_user_id)


def state(graph: GraphClient) -> BreakerState:
    assert graph.breaker is not None
    return graph.breaker.snapshot().state


async def test_an_outage_stops_the_calls_probes_at_a_bounded_rate_and_recovery_closes_it(
    guarded: GraphClient,
    admin: SandboxAdmin,
    account: SandboxAccount,
    media: StandardMedia,
    clock: ManualClock,
) -> None:
    container = await guarded.create_container(
        ig_user_id=account.ig_user_id, spec=ImageSpec(media.square), access_token=account.access_token
    )
    await wait_for_status(guarded, container.id, account.access_token)
    outage = await admin.start_outage("unavailable", seconds=3600)

    # Three real failures open the breaker; the next calls, media_publish among them, are not sent.
    for _ in range(3):
        with pytest.raises(GraphTransientError) as failure:
            await read(guarded, account)
        assert not isinstance(failure.value, GraphCircuitOpenError)
    assert state(guarded) is BreakerState.OPEN
    for _ in range(20):
        with pytest.raises(GraphCircuitOpenError):
            await read(guarded, account)
    with pytest.raises(GraphCircuitOpenError) as refused:
        await guarded.publish(
            ig_user_id=account.ig_user_id, container_id=container.id, access_token=account.access_token
        )
    assert not isinstance(refused.value, OutcomeUnknownError)  # nothing was sent, so nothing was published
    assert refused.value.retry_after == timedelta(seconds=10)
    assert len(await admin.calls(outage=outage["id"])) == 3
    assert await admin.calls(endpoint="media_publish") == []

    # While the host stays down: one probe per open period (10 s, then 20 s, then 30 s), however many wait.
    async def crowd() -> list[BaseException | None]:
        return await asyncio.gather(*(read(guarded, account) for _ in range(10)), return_exceptions=True)

    for open_seconds in (10, 20, 30, 30):
        clock.advance(open_seconds - 1)
        assert all(isinstance(e, GraphCircuitOpenError) for e in await crowd())
        clock.advance(1)
        outcomes = await crowd()
        assert sum(not isinstance(e, GraphCircuitOpenError) for e in outcomes) == 1  # the probe, failed
        assert state(guarded) is BreakerState.OPEN
    assert len(await admin.calls(outage=outage["id"])) == 3 + 4

    # Meta is back: the next probe closes the breaker and every call goes through again, the publish too.
    await admin.end_outage(outage["id"])
    clock.advance(30)
    assert sum(e is None for e in await crowd()) == 1
    assert state(guarded) is BreakerState.CLOSED
    assert all(e is None for e in await crowd())
    published = await guarded.publish(
        ig_user_id=account.ig_user_id, container_id=container.id, access_token=account.access_token
    )
    assert [m["id"] for m in await admin.published(account.ig_user_id)] == [published.id]
    assert guarded.breaker is not None
    snapshot = guarded.breaker.snapshot()
    assert (snapshot.opened_total, snapshot.rejected_total) == (5, 21 + 4 * 19 + 9)


async def test_without_a_breaker_every_call_of_an_outage_is_sent(
    graph: GraphClient, admin: SandboxAdmin, account: SandboxAccount
) -> None:
    """What the breaker saves: the same twenty-three calls all reach the failing host."""
    outage = await admin.start_outage("unavailable", seconds=3600)
    for _ in range(23):
        with pytest.raises(GraphTransientError):
            await read(graph, account)
    assert len(await admin.calls(outage=outage["id"])) == 23


@pytest.mark.parametrize("kind", ["app_throttle", "user_throttle", "buc_throttle"])
async def test_throttles_never_open_it(
    guarded: GraphClient, admin: SandboxAdmin, account: SandboxAccount, kind: str
) -> None:
    """A throttle is the host answering (and carries Meta's own wait); most are per account, so one account's
    throttle must not stop the other accounts' posts."""
    outage = await admin.start_outage(kind, seconds=3600, http_status=503)
    for _ in range(10):
        with pytest.raises(GraphThrottledError):
            await read(guarded, account)
    assert len(await admin.calls(outage=outage["id"])) == 10
    assert state(guarded) is BreakerState.CLOSED


async def test_refused_tokens_never_open_it(
    guarded: GraphClient, admin: SandboxAdmin, account: SandboxAccount
) -> None:
    await admin.revoke_token(account.access_token)
    for _ in range(10):
        with pytest.raises(GraphAuthError):
            await read(guarded, account)
    assert state(guarded) is BreakerState.CLOSED


async def test_one_account_outage_mixed_with_answers_keeps_it_closed(
    guarded: GraphClient, admin: SandboxAdmin, account: SandboxAccount
) -> None:
    """Failures must be consecutive: another account's answers in between keep the host's breaker closed."""
    other = await admin.create_account("chronogram_other")
    await admin.start_outage("unavailable", seconds=3600, ig_user_id=account.ig_user_id, endpoint="user_read")
    for _ in range(10):
        with pytest.raises(GraphTransientError):
            await read(guarded, account)
        await read(guarded, other)
    assert state(guarded) is BreakerState.CLOSED


async def test_an_unreachable_host_opens_it_and_the_hook_sees_only_the_probes(clock: ManualClock) -> None:
    sent: list[str] = []

    async def count(request: httpx.Request) -> None:
        sent.append(request.url.path)

    registry = BreakerRegistry(CONFIG, clock=clock)
    # Port 9 (discard) on loopback: nothing listens, every connection is refused.
    async with httpx.AsyncClient(trust_env=False, event_hooks={"request": [count]}) as http:
        graph = GraphClient(
            http, base_url="http://127.0.0.1:9", api_version=API_VERSION, timeout=2.0, breakers=registry
        )
        for _ in range(10):
            with pytest.raises(GraphTransientError):
                await graph.get_container(container_id="1", access_token="secret-token")
        clock.advance(10)
        for _ in range(10):
            with pytest.raises(GraphTransientError) as refused:
                await graph.get_container(container_id="1", access_token="secret-token")
    assert len(sent) == 3 + 1
    assert isinstance(refused.value, GraphCircuitOpenError) and "secret-token" not in str(refused.value)
    (snapshot,) = registry.snapshot()
    assert (snapshot.host, snapshot.state, snapshot.last_failure) == (
        "127.0.0.1:9",
        BreakerState.OPEN,
        "ConnectError",
    )
    assert snapshot.retry_after == timedelta(seconds=20)


async def test_clients_of_one_registry_share_their_host_breaker(
    http: httpx.AsyncClient, sandbox_url: str
) -> None:
    registry = BreakerRegistry.from_settings(Settings(graph_api_base_url=sandbox_url))
    settings = Settings(graph_api_base_url=sandbox_url)
    first = GraphClient.from_settings(http, settings, breakers=registry)
    second = GraphClient.from_settings(http, settings, breakers=registry)
    assert first.breaker is not None and first.breaker is second.breaker
    assert GraphClient.from_settings(http, settings).breaker is None
