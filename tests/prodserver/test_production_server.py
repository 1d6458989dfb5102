"""The product on the production Temporal server (PostgreSQL persistence, SQL visibility) and a PostgreSQL
application database: a post published, the operators' visibility queries answered, and a worker killed with a
post in flight whose post a second worker publishes exactly once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import psycopg
import pytest
from sqlalchemy import make_url
from temporalio.client import Client

from api import temporal_gateway
from api.deps import AppServices
from chronogram.enums import PostStatus, PostType
from chronogram.settings import Settings
from devstack.services import PostgresServer, apply_schemas
from sandbox.admin_client import SandboxAccount, SandboxAdmin
from scripts.latest_runs import latest_runs
from tests.support.factories import PostSeed, Seeder
from tests.support.media import Upload
from tests.support.publishing import (
    assert_published_exactly_once,
    start_seeded,
    wait_for_graph_call,
    wait_for_started_activity,
)
from tests.support.stack import background_worker
from tests.support.workers import Workers

pytestmark = pytest.mark.prodserver

# The queries of docs/operations.md, with times filled in: SQL visibility must accept each (it refuses ORDER BY,
# and supports less than Elasticsearch would).
OPERATOR_QUERIES = (
    "PostStatus='failed' AND CloseTime > '2026-01-01T00:00:00Z'",
    "PostStatus='failed' AND ErrorCode='GraphAuthError'",
    "ExecutionStatus='Running' AND PostStatus='scheduled' AND PublishAt < '2026-01-01T00:00:00Z'",
    "ExecutionStatus='Running' AND PostStatus='scheduled' "
    "AND PublishAt BETWEEN '2026-01-01T00:00:00Z' AND '2026-01-01T01:00:00Z'",
    "ExecutionStatus='Running' AND AccountId='3'",
    "ExecutionStatus='Running' AND UserId='42'",
    "ExecutionStatus='Running' AND Username='acme_bakery'",
    "ExecutionStatus='Running' AND DelayedSince IS NOT NULL",
)


def _seed(delay: timedelta) -> PostSeed:
    return PostSeed(PostType.IMAGE, [Upload.jpeg(1080, 1080)], datetime.now(UTC) + delay)


async def test_a_post_is_published_and_found_by_the_visibility_queries(
    prod_settings: Settings,
    prod_client: Client,
    prod_seeder: Seeder,
    prod_account: tuple[SandboxAccount, int],
    prod_sandbox: SandboxAdmin,
) -> None:
    ig, account_id = prod_account
    async with background_worker(prod_settings, settle=1.0):
        post_id, handle = await start_seeded(
            prod_client, prod_seeder, prod_account, _seed(timedelta(seconds=3))
        )
        result = await asyncio.wait_for(handle.result(), timeout=180)
    assert result.status is PostStatus.PUBLISHED
    await assert_published_exactly_once(prod_sandbox, ig)

    # SQL visibility: the project's search attributes, and the queries the API and the scripts send (no ORDER
    # BY, which SQL visibility refuses).
    query = f"PostStatus='published' AND AccountId='{account_id}'"
    found = [execution.id async for execution in prod_client.list_workflows(query)]
    for _ in range(150):  # visibility trails the history by a moment (more on a busy machine)
        if found:
            break
        await asyncio.sleep(0.2)
        found = [execution.id async for execution in prod_client.list_workflows(query)]
    assert found == [handle.id]
    [latest] = await latest_runs(prod_client, f"AccountId='{account_id}'", "PostStatus")
    assert (latest.workflow_id, latest.value) == (handle.id, "published")
    services = cast(AppServices, SimpleNamespace(temporal=prod_client))
    since = datetime.now(UTC) - timedelta(hours=1)
    assert post_id not in await temporal_gateway.runs_ended_unfinished(services, closed_after=since)
    for operator_query in OPERATOR_QUERIES:
        await prod_client.count_workflows(operator_query)
        [_ async for _ in prod_client.list_workflows(operator_query, page_size=10)]


async def test_a_killed_workers_post_in_flight_is_published_once_by_another(
    prod_workers: Workers,
    prod_client: Client,
    prod_seeder: Seeder,
    prod_account: tuple[SandboxAccount, int],
    prod_sandbox: SandboxAdmin,
) -> None:
    """Killed after Instagram took the publish call and before the worker recorded it: the second worker finds
    out from Instagram and publishes nothing twice."""
    ig, _ = prod_account
    fault: dict[str, Any] = {"action": "commit_then_hang", "endpoint": "media_publish", "seconds": 30}
    await prod_sandbox.add_fault(ig_user_id=ig.ig_user_id, **fault)
    first = prod_workers.start()
    _post_id, handle = await start_seeded(prod_client, prod_seeder, prod_account, _seed(timedelta(seconds=3)))
    await wait_for_started_activity(handle, "publish", within=60)
    await wait_for_graph_call(prod_sandbox, ig, "media_publish", within=60)
    first.kill()
    prod_workers.start()
    result = await asyncio.wait_for(handle.result(), timeout=240)
    assert result.status is PostStatus.PUBLISHED
    await assert_published_exactly_once(prod_sandbox, ig)


@pytest.mark.usefixtures("temporal_prod_server")
def test_the_schemas_apply_again_on_a_running_server(postgres_server: PostgresServer) -> None:
    """What every `make dev TEMPORAL=server` does on the databases of the previous one: nothing to apply, no error,
    the version unchanged."""

    def versions() -> list[tuple[str, str]]:
        found = []
        for database in ("temporal", "temporal_visibility"):
            url = make_url(postgres_server.url).set(drivername="postgresql", database=database)
            with psycopg.connect(url.render_as_string(hide_password=False)) as connection:
                row = connection.execute("SELECT db_name, curr_version FROM schema_version").fetchone()
                assert row is not None
                found.append((str(row[0]), str(row[1])))
        return found

    before = versions()
    apply_schemas(postgres_server)
    assert versions() == before
    assert all(version not in ("", "0.0") for _, version in before)
