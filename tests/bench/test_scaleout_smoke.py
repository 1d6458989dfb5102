"""The scale-out scenario's quick mode on the production Temporal server, so that it cannot rot: two workers and
two API processes on PostgreSQL, one worker SIGKILLed mid-burst, every post published exactly once. The full
run (1,000 posts) stays in the benchmarks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench.__main__ import main
from bench.params import QUICK

pytestmark = pytest.mark.prodserver


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "scaleout.json"
    argv = ["--quick", "--only", "scaleout", "--temporal", "server", "--db", "postgres"]
    assert main([*argv, "--workers", "2", "--apis", "2", "--out", str(out)]) == 0, (
        f"see {out.with_suffix('.log')}"
    )
    document: dict[str, Any] = json.loads(out.read_text())
    return document


def test_runs_on_the_production_server_in_a_fresh_namespace(results: dict[str, Any]) -> None:
    assert results["temporal_server"] == "server"
    assert results["stack"]["temporal"].startswith("production server")
    assert "fresh namespace bench-" in results["stack"]["temporal"]
    assert list(results["scenarios"]) == ["scaleout"]


def test_a_killed_worker_loses_no_post_and_publishes_none_twice(results: dict[str, Any]) -> None:
    scaleout = results["scenarios"]["scaleout"]
    assert "error" not in scaleout, scaleout.get("error")
    assert scaleout["workers"] == 2 and scaleout["apis"] == 2
    assert all(created > 0 for created in scaleout["posts_created_per_api"])
    assert scaleout["statuses"] == {"published": QUICK.scaleout_posts}
    assert scaleout["exactly_once"] and scaleout["duplicates"] == 0
    assert scaleout["sandbox_media"] == QUICK.scaleout_posts
    assert scaleout["published_before_kill"] < QUICK.scaleout_posts
    assert scaleout["lag_all"]["count"] == QUICK.scaleout_posts
