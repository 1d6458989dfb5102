"""The results: a JSON document (machine, versions, parameters, stack, figures, goals) and a table for the terminal."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from chronogram.settings import PROJECT_ROOT
from devstack import tools

SCHEMA_VERSION = 1


def machine() -> dict[str, Any]:
    cpuinfo = _read("/proc/cpuinfo")
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    meminfo = {
        line.split(":")[0]: line.split(":")[1].strip()
        for line in _read("/proc/meminfo").splitlines()
        if ":" in line
    }
    os_release = {
        key: value.strip('"')
        for key, _, value in (line.partition("=") for line in _read("/etc/os-release").splitlines())
    }
    return {
        "cpu_model": models[0] if models else platform.processor(),
        "logical_cpus": os.cpu_count(),
        "memory_total": meminfo.get("MemTotal"),
        "os": os_release.get("PRETTY_NAME", platform.platform()),
        "kernel": platform.release(),
        # The machine may be shared: the load before the run says whether the figures had it to themselves.
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
    }


def versions() -> dict[str, Any]:
    found: dict[str, Any] = {"python": platform.python_version()}
    for package in (
        "temporalio",
        "fastapi",
        "uvicorn",
        "starlette",
        "sqlalchemy",
        "sqlmodel",
        "pillow",
        "httpx",
    ):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    found["temporal_cli"] = _command_output([str(tools.temporal_cli().path), "--version"])
    found["minio"] = tools.MINIO_MODULE_VERSION
    found["sqlite"] = sqlite3.sqlite_version
    commit = _command_output(["git", "rev-parse", "HEAD"])
    dirty = _command_output(["git", "status", "--porcelain", "--untracked-files=no"])
    found["chronogram_commit"] = commit
    found["chronogram_worktree_modified"] = bool(dirty)
    return found


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _command_output(argv: list[str]) -> str | None:
    try:
        result = subprocess.run(
            argv, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def write_json(document: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(document, indent=2, default=str) + "\n")
    temporary.replace(path)  # a reader never sees half a file


# --- the table -------------------------------------------------------------------------------------------------


def key_figures(name: str, result: dict[str, Any]) -> list[tuple[str, str]]:
    """The few numbers of a scenario worth a line each in the terminal; everything is in the JSON."""
    if "error" in result:
        return [("error", str(result["error"])[:100])]
    if name == "scheduling":
        rows = []
        for clients, level in result["levels"].items():
            api, bare = level["api"], level["bare"]
            rows.append(
                (
                    f"{clients} client(s): API p50/p95/p99",
                    f"{api['p50_ms']} / {api['p95_ms']} / {api['p99_ms']} ms ({api['per_second']}/s)",
                )
            )
            rows.append(
                (
                    f"{clients} client(s): bare p50/p95/p99",
                    f"{bare['p50_ms']} / {bare['p95_ms']} / {bare['p99_ms']} ms ({bare['per_second']}/s)",
                )
            )
            rows.append((f"{clients} client(s): ratio p50/p95/p99", _ratios(level)))
        return rows
    if name == "punctuality":
        lag = result["lag"]
        return [
            (
                "posts / accounts",
                f"{result['posts']} / {result['accounts']} over {result['window_s']:g} s, "
                f"{result['prepared_at_first_instant']} prepared when the window opened",
            ),
            ("lag p50 / p99 / max", f"{lag.get('p50_ms')} / {lag.get('p99_ms')} / {lag.get('max_ms')} ms"),
            ("exactly once", str(result["exactly_once"])),
        ]
    if name == "burst":
        product, bare = result["product"], result["bare"]
        return [
            (
                "posts / accounts",
                f"{product['posts']} / {product['accounts']}, {product['prepared_at_instant']} prepared at the instant",
            ),
            (
                "drain to last publish",
                f"{product['drain_to_last_publish_s']} s ({product['posts_per_second_published']}/s)",
            ),
            (
                "drain to last completion",
                f"{product['drain_to_last_completion_s']} s ({product['posts_per_second_completed']}/s)",
            ),
            ("bare ceiling", f"{bare['drain_to_last_completion_s']} s ({bare['workflows_per_second']}/s)"),
            ("throughput vs bare", str(result["throughput_vs_bare"])),
            (
                "exactly once",
                f"{product['exactly_once']} ({product['sandbox_media']} media, {product['duplicates']} duplicates)",
            ),
        ]
    if name == "idle":
        cores = result["idle_cpu"]["cores"]
        rss = result["rss_mib"]
        return [
            ("sleeping posts", f"{result['sleeping_posts']:,}"),
            (
                "RSS worker / dev server / API",
                f"{rss.get('worker')} / {rss.get('temporal')} / {rss.get('api')} MiB",
            ),
            (
                "idle CPU worker / Temporal / API",
                f"{cores.get('worker', 0) * 100:.2f} / {cores.get('temporal', 0) * 100:.2f} / {cores.get('api', 0) * 100:.2f} % of a core",
            ),
            (
                "GET /v1/posts p50 / p99",
                f"{result['list']['all']['p50_ms']} / {result['list']['all']['p99_ms']} ms",
            ),
            (
                "database size app / Temporal",
                f"{result['database_bytes']['app'] / 2**20:.1f} / {result['database_bytes']['temporal'] / 2**20:.1f} MiB",
            ),
        ]
    if name == "media":
        worker = result["rendition_in_worker"]
        alone = result["rendition_alone"]
        return [
            ("upload 10 MB median / max", f"{result['upload_median_s']} / {result['upload_max_s']} s"),
            ("API peak above rest", f"{result['api_peak_above_rest_mib']} MiB"),
            ("rendition in worker", f"{worker['run_s']} s, peak +{worker['worker_peak_above_rest_mib']} MiB"),
            ("rendition alone", f"{alone['seconds']} s, peak +{alone['peak_above_rest_mib']} MiB"),
        ]
    if name == "uploads":
        concurrent, slow = result["concurrent"], result["slow"]
        quiet, one, many = slow["list_without_uploads"], slow["one_user"], slow["many_users"]
        refusal = one["refusal_ms"]["max_ms"] if one["refusal_ms"] else "-"
        return [
            (
                f"{concurrent['uploads']} concurrent uploads of {concurrent['image_bytes'] / 1e6:.1f} MB",
                f"{concurrent['statuses']} in {concurrent['seconds']} s (each p50 / max "
                f"{concurrent['upload']['p50_ms']} / {concurrent['upload']['max_ms']} ms)",
            ),
            ("GET /v1/posts p50 / p99, no uploads", _listing(quiet)),
            (
                f"... {one['uploads']} slow uploads, one user",
                f"{_listing(one['list'])}; {one['refused']} refused (429) in {refusal} ms at most",
            ),
            (f"... {many['uploads']} slow uploads, {many['users']} users", _listing(many["list"])),
        ]
    if name == "scaleout":
        held, others = result["lag_held_by_killed_worker"], result["lag_others"]
        return [
            (
                "posts / workers / APIs",
                f"{result['posts']} / {result['workers']} / {result['apis']}, "
                f"one worker SIGKILLed {result['killed_at_s_after_instant']} s after the instant",
            ),
            (
                "exactly once",
                f"{result['exactly_once']} ({result['sandbox_media']} media, {result['duplicates']} duplicates)",
            ),
            (
                f"lag of the {held['count']} posts the dead worker held p50 / p99 / max",
                f"{held['p50_s']} / {held['p99_s']} / {held['max_s']} s",
            ),
            (
                "lag of the others p50 / p99 / max",
                f"{others['p50_s']} / {others['p99_s']} / {others['max_s']} s",
            ),
            ("what the held posts lost", ", ".join(f"{k}: {v}" for k, v in result["what_they_lost"].items())),
        ]
    if name == "templates":
        api, alone, read = result["render_api"], result["render_alone"], result["read_template_api"]
        made, given = result["create_post_from_template"], result["create_post_with_caption"]
        return [
            (
                f"render via API p50 / p99 ({result['rendered_chars']} chars, {result['variables']} variables)",
                f"{api['p50_ms']} / {api['p99_ms']} ms",
            ),
            ("GET /v1/templates/{id} p50 / p99 (baseline)", f"{read['p50_ms']} / {read['p99_ms']} ms"),
            ("render alone p50 / p99", f"{alone['p50_ms']} / {alone['p99_ms']} ms"),
            (
                "POST /v1/posts p50 / p99, template / caption",
                f"{made['p50_ms']} / {made['p99_ms']} ms, {given['p50_ms']} / {given['p99_ms']} ms",
            ),
        ]
    return []


def _listing(listed: dict[str, Any]) -> str:
    return (
        f"{listed['p50_ms']} / {listed['p99_ms']} ms, API at {listed['api_cpu_cores'] * 100:.0f} % of a core"
    )


def _ratios(level: dict[str, Any]) -> str:
    return f"{level['ratio_p50']} / {level['ratio_p95']} / {level['ratio_p99']}x"


def table(document: dict[str, Any]) -> str:
    server = document.get("temporal_server", "dev")
    lines: list[str] = [
        f"Temporal: {'the dev server (SQLite)' if server == 'dev' else 'the production server (PostgreSQL)'}"
    ]
    figures = []
    for name, result in document["scenarios"].items():
        figures += [(name, label, value) for label, value in key_figures(name, result)]
        machine = result.get("machine_cpu")
        if machine:
            # A neighbour's load on a shared machine is part of what the figures measured.
            figures.append(
                (
                    name,
                    "CPU: stack / other processes",
                    f"{machine['stack_cores']} / {machine['other_cores']} cores",
                )
            )
    lines += _grid(("scenario", "figure", "measured"), figures)
    lines.append("")
    goals = [
        (goal["scenario"], goal["goal"], goal["measured"], "yes" if goal["met"] else "NO")
        for goal in document["goals"]
    ]
    lines += _grid(("scenario", "goal", "measured", "met"), goals)
    return "\n".join(lines)


def _grid(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    rule = "  ".join("-" * width for width in widths)
    out = ["  ".join(str(cell).ljust(width) for cell, width in zip(header, widths, strict=True)), rule]
    out += [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows
    ]
    return out
