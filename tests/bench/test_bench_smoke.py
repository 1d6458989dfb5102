"""The benchmark's quick mode, end to end, so that it cannot rot: it brings up its own stack (free ports, a
temporary directory), runs every scenario with tiny counts and writes its JSON. The figures are not judged
against the goals here (they depend on the machine); the shape of the results and their sanity are, and so is
exactly-once."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench.__main__ import main
from bench.params import QUICK
from bench.scenarios import DEFAULT_SCENARIOS


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    assert main(["--quick", "--out", str(out)]) == 0, f"a scenario failed; see {out.with_suffix('.log')}"
    document: dict[str, Any] = json.loads(out.read_text())
    return document


def test_document_describes_the_run(results: dict[str, Any]) -> None:
    assert results["mode"] == "quick"
    assert results["parameters"] == QUICK.to_json()
    assert results["machine"]["logical_cpus"] >= 1 and results["machine"]["memory_total"]
    assert results["versions"]["python"] and results["versions"]["temporalio"]
    assert "1.5" in (results["versions"]["temporal_cli"] or "")
    assert results["stack"]["app_database"].startswith("SQLite")
    assert list(results["scenarios"]) == list(DEFAULT_SCENARIOS)
    for name, scenario in results["scenarios"].items():
        assert "error" not in scenario, f"{name}: {scenario.get('error')}"
        assert scenario["path"] == "api"
        assert scenario["goals"] and all(
            {"goal", "measured", "met"} <= set(goal) for goal in scenario["goals"]
        )
    assert len(results["goals"]) == sum(len(s["goals"]) for s in results["scenarios"].values())


def _sane_latency(summary: dict[str, Any], count: int) -> None:
    assert summary["n"] == count
    assert 0 < summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"] <= summary["max_ms"]


def test_scheduling(results: dict[str, Any]) -> None:
    scheduling = results["scenarios"]["scheduling"]
    assert set(scheduling["levels"]) == {"1", str(QUICK.scheduling_concurrency)}
    for level in scheduling["levels"].values():
        _sane_latency(level["api"], QUICK.scheduling_posts)
        _sane_latency(level["bare"], QUICK.scheduling_posts)
        assert level["ratio_p99"] > 0 and level["api"]["per_second"] > 0
        assert level["cpu_ms_per_api_post"]["api"] > 0


def test_punctuality_publishes_every_post_once_and_never_early(results: dict[str, Any]) -> None:
    punctuality = results["scenarios"]["punctuality"]
    assert punctuality["statuses"] == {"published": QUICK.punctuality_posts}
    assert punctuality["exactly_once"] and punctuality["sandbox_media"] == QUICK.punctuality_posts
    _sane_latency(punctuality["lag"], QUICK.punctuality_posts)
    assert 0 <= punctuality["prepared_at_first_instant"] <= QUICK.punctuality_posts
    assert len(punctuality["lags_ms_by_publish_at"]) == QUICK.punctuality_posts
    assert punctuality["slowest_timelines"] and all(punctuality["slowest_timelines"].values())
    assert punctuality["published_early"] == 0 and punctuality["lag"]["min_ms"] >= 0
    # Every post's scheduled, publishing and published events reached the webhook receiver, verified, once.
    notifications = punctuality["notifications"]
    assert notifications["events"] == 3 * QUICK.punctuality_posts
    assert notifications["refused_signatures"] == 0 and notifications["duplicates"] == 0
    _sane_latency(notifications["latency"], 3 * QUICK.punctuality_posts)


def test_burst_is_exactly_once_and_compared_with_the_bare_ceiling(results: dict[str, Any]) -> None:
    burst = results["scenarios"]["burst"]
    product, bare = burst["product"], burst["bare"]
    assert product["exactly_once"] and product["duplicates"] == 0
    assert product["sandbox_media"] == product["posts"] == product["completed_workflows"] == QUICK.burst_posts
    assert product["statuses"] == {"published": QUICK.burst_posts}
    assert product["posts_per_second_completed"] > 0 and product["drain_to_last_completion_s"] > 0
    assert bare["workflows"] == QUICK.burst_posts and bare["workflows_per_second"] > 0
    assert bare["sampled_late_at_instant"] == 0
    # The bare workflow mirrors a post's: preparation before the instant, publishing after, one timer between;
    # after it, the first comment through the server and the ending as a local activity (the insights were started
    # before the instant, as the post began publishing).
    shape = burst["workflow_shape"]
    assert shape["activities_before"] >= 3 and shape["timers"] >= 1
    assert shape["activities_after"] >= 1 and shape["local_activities_after"] == 1
    assert burst["throughput_vs_bare"] > 0
    # The bare ceiling with the post's Graph calls put back: each of its workflows published its container once.
    with_calls = burst["bare_with_calls"]
    assert with_calls["workflows"] == with_calls["sandbox_media"] == QUICK.burst_posts
    assert with_calls["sampled_late_at_instant"] == 0
    assert burst["bare_with_calls_vs_bare"] > 0 and burst["throughput_vs_bare_with_calls"] > 0


def test_idle(results: dict[str, Any]) -> None:
    idle = results["scenarios"]["idle"]
    assert idle["sleeping_posts"] >= QUICK.idle_posts
    assert idle["rss_mib"]["worker"] > 0 and idle["rss_mib"]["temporal"] > 0
    assert idle["idle_cpu"]["wall_s"] >= QUICK.idle_window_s * 0.9
    assert all(value >= 0 for value in idle["idle_cpu"]["cpu_s"].values())
    _sane_latency(idle["list"]["all"], QUICK.list_requests)
    assert idle["database_bytes"]["app"] > 0 and idle["database_bytes"]["temporal"] > 0


def test_media(results: dict[str, Any]) -> None:
    media = results["scenarios"]["media"]
    assert media["image_bytes"] >= QUICK.media_bytes
    assert len(media["upload_s"]) == QUICK.media_uploads and media["upload_max_s"] > 0
    assert media["published"]
    assert media["rendition_in_worker"]["run_s"] > 0
    assert media["rendition_alone"]["seconds"] > 0 and media["rendition_alone"]["rendition_bytes"] > 0
    assert max(media["rendition_alone"]["rendition_size"]) <= 1440


def test_uploads(results: dict[str, Any]) -> None:
    uploads = results["scenarios"]["uploads"]
    concurrent, slow = uploads["concurrent"], uploads["slow"]
    assert concurrent["statuses"] == {"201": QUICK.upload_concurrency}
    assert concurrent["image_bytes"] >= QUICK.upload_bytes and concurrent["seconds"] > 0
    one, many = slow["one_user"], slow["many_users"]
    # The one user's uploads beyond its limit are refused, before their bodies are read; the others were still
    # streaming in when the window ended, and were abandoned.
    assert one["refused"] == QUICK.slow_uploads - one["in_flight_at_window_end"] > 0
    assert one["statuses"] == {"0": one["in_flight_at_window_end"], "429": one["refused"]}
    assert one["refusal_ms"]["max_ms"] < 10_000
    assert many["in_flight_at_window_end"] == QUICK.slow_uploads and many["refused"] == 0
    for listed in (slow["list_without_uploads"], one["list"], many["list"]):
        assert listed["n"] > 0 and 0 < listed["p50_ms"] <= listed["p99_ms"]
    assert slow["one_user_uploads_again_after_abandoning"]["status"] == 201


def test_templates(results: dict[str, Any]) -> None:
    templates = results["scenarios"]["templates"]
    assert templates["render_api"]["n"] == QUICK.template_renders and templates["render_api"]["p99_ms"] > 0
    assert templates["render_alone"]["n"] == QUICK.template_renders
    assert templates["create_post_from_template"]["n"] == QUICK.template_posts
    assert templates["rendered_chars"] > 1000


def test_chaos_publishes_once_or_cancels_every_post_despite_kills_a_restart_and_faults(
    results: dict[str, Any],
) -> None:
    chaos = results["scenarios"]["chaos"]
    assert chaos["wrong"] == [] and chaos["first_comments_wrong"] == []
    assert sum(chaos["statuses"].values()) == QUICK.chaos_posts
    assert set(chaos["statuses"]) <= {"published", "cancelled"}
    disruptions = chaos["disruptions"]
    assert len(disruptions["worker_kills"]) == QUICK.chaos_kills
    assert disruptions["temporal_restart"]["frontend_away_s"] > 0
    # The sandbox's seeded faults hit about the asked share of the Graph calls.
    assert chaos["graph_calls"] > 0 and 0 < chaos["faulted_calls"] < chaos["graph_calls"] / 3
    _sane_latency(chaos["lag"], chaos["statuses"].get("published", 0))
    assert chaos["slowest_steps"] and all(chaos["slowest_steps"].values())
