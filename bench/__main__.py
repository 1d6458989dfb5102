"""Chronogram's benchmarks on the real stack (see bench/README.md).

    python -m bench                       # full run (what `make bench` runs); results in bench/results/latest.json
    python -m bench --quick               # smoke run with tiny counts, about a minute; bench/results/quick.json
    python -m bench --only burst idle     # some scenarios only
    python -m bench --temporal server     # on the production Temporal server (PostgreSQL) instead of the dev server
    python -m bench --only scaleout --temporal server --db postgres --workers 2 --apis 2   # scale-out

Brings up the Temporal dev server, MinIO, the Graph API sandbox, the worker and the API on free ports in a
temporary directory, runs the scenarios in order, prints a table and writes the JSON. The servers' logs go to
a file next to the JSON. Exits 1 if a scenario could not run; a missed goal is a result, not an error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report
from bench.baseline import connect_plain
from bench.client import Api, AppDb, new_http, small_jpeg
from bench.context import Bench, settle_workers
from bench.params import FULL, QUICK, Params
from bench.procinfo import MachineMeter
from bench.progress import Progress
from bench.scenarios import DEFAULT_SCENARIOS, SCENARIOS
from bench.stack import SANDBOX_QUOTA, BenchStack, StackConfig, running_stack
from chronogram.settings import PROJECT_ROOT
from chronogram.temporal import connect_temporal
from sandbox.admin_client import SandboxAdmin

RESULTS = PROJECT_ROOT / "bench" / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="tiny counts: a smoke run")
    mode.add_argument("--full", action="store_true", help="the issue's counts (the default)")
    parser.add_argument("--only", nargs="+", choices=list(SCENARIOS), metavar="SCENARIO",
                        help=f"run only these, in the usual order ({', '.join(SCENARIOS)}; scaleout only when named)")  # fmt: skip
    parser.add_argument("--out", type=Path, help="the JSON (default bench/results/latest.json, quick.json)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a CHRONOGRAM_NAME setting for the worker and the API, e.g. --set WORKER_MAX_CACHED_WORKFLOWS=500 "
        "(recorded in the JSON; the defaults are what is measured otherwise)",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="change one size of the mode, e.g. --param idle_posts=2000 (see bench/params.py; recorded in the JSON)",
    )
    parser.add_argument(
        "--label", default="", help="what is being measured, recorded in the JSON (e.g. a patch under test)"
    )
    parser.add_argument(
        "--db",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="the application database: a fresh SQLite file (the default backend) or a local PostgreSQL server",
    )
    parser.add_argument(
        "--temporal",
        choices=["dev", "server"],
        default="dev",
        help="the Temporal server: the dev server (SQLite; the default) or the production server on PostgreSQL "
        "(built into the tool cache on first use); each run uses a fresh namespace",
    )
    parser.add_argument(
        "--temporal-config",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="a dynamic config value for the Temporal server, e.g. --temporal-config "
        "'history.timerProcessorMaxTimeShift=\"100ms\"' (recorded in the JSON)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes for the product and for the bare baseline alike (default 1)",
    )
    parser.add_argument(
        "--apis",
        type=int,
        default=1,
        help="API processes (default 1; the scaleout scenario wants 2, with --db postgres)",
    )
    parser.add_argument(
        "--notifications-process",
        action="store_true",
        help="run the notifications in a worker process of their own (CHRONOGRAM_WORKER_ROLES), the posts in the "
        "others (default: one process runs both, the default deployment)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep the run's databases and MinIO data here (default: a deleted temp dir)",
    )
    args = parser.parse_args(argv)
    for item in args.set:
        if "=" not in item or not item.split("=", 1)[0]:
            parser.error(f"--set {item!r}: expected NAME=VALUE")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    params = (QUICK if args.quick else FULL).with_changes(args.param)
    out: Path = args.out or RESULTS / ("quick.json" if args.quick else "latest.json")
    log_path = out.with_suffix(".log")
    names = [name for name in SCENARIOS if name in args.only] if args.only else list(DEFAULT_SCENARIOS)
    progress = Progress()
    started_at = datetime.now(UTC)
    began = time.monotonic()
    document: dict[str, Any] = {
        "benchmark": "chronogram",
        "schema_version": report.SCHEMA_VERSION,
        "mode": params.mode,
        "label": args.label,
        "temporal_server": args.temporal,
        "scenarios_run": names,
        "started_at": started_at.isoformat(),
        "machine": report.machine(),
        "versions": report.versions(),
        "parameters": params.to_json(),
        "scenarios": {},
        "goals": [],
        "notes": [],
    }
    progress.say(f"{params.mode} run of {', '.join(names)}; server logs in {log_path}")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    failed = False
    with open(log_path, "w", buffering=1) as log:
        overrides = dict(item.split("=", 1) for item in args.set)
        config = StackConfig(
            database=args.db,
            temporal=args.temporal,
            workers=args.workers,
            apis=args.apis,
            notifications_process=args.notifications_process,
            temporal_dynamic_config=dict(item.split("=", 1) for item in args.temporal_config),
            extra_env={name.upper().removeprefix("CHRONOGRAM_"): value for name, value in overrides.items()},
        )
        server = "Temporal dev server" if args.temporal == "dev" else "Temporal server on PostgreSQL"
        progress.say(f"starting the stack: {server}, MinIO, sandbox, API, worker, bare worker ...")
        with running_stack(log, config, args.workdir) as stack:
            progress.say(f"stack up in {sum(stack.startup_seconds.values()):.1f} s")
            document["stack"] = _describe_stack(stack, config)
            failed = asyncio.run(_run_scenarios(stack, params, names, progress, document))
    document["finished_at"] = datetime.now(UTC).isoformat()
    # Another load on the machine during the run shows here (the run's own load included).
    document["machine"]["load_average_at_end"] = [round(value, 2) for value in os.getloadavg()]
    document["duration_s"] = round(time.monotonic() - began, 1)
    report.write_json(document, out)
    print(report.table(document))
    progress.say(f"results written to {out} ({document['duration_s']:.0f} s)")
    return 1 if failed else 0


async def _run_scenarios(
    stack: BenchStack, params: Params, names: list[str], progress: Progress, document: dict[str, Any]
) -> bool:
    failed = False
    async with new_http(connections=8) as http:
        api = Api(http, stack.api_url, stack.api_key)
        media = await api.upload(small_jpeg(), "bench.jpg")
        bench = Bench(
            stack=stack,
            params=params,
            progress=progress,
            http=http,
            api=api,
            sandbox=SandboxAdmin(http, stack.sandbox_url),
            temporal=await connect_temporal(stack.settings),
            bare=await connect_plain(stack.settings),
            db=AppDb(stack.settings.database_url),
            media_id=int(media["id"]),
        )
        for name in names:
            caught_up = await settle_workers(bench, name)
            progress.say(f"{name}: starting")
            began = time.monotonic()
            machine = MachineMeter(stack.pids())
            try:
                result = await SCENARIOS[name].run(bench)
                stack.check_alive()
            except Exception as error:  # one scenario's failure must not lose the others' figures
                failed = True
                traceback.print_exc()
                result = {"error": _describe(error)}
                document["goals"].append(
                    {"scenario": name, "goal": "ran", "measured": result["error"][:200], "met": False}
                )
            result["duration_s"] = round(time.monotonic() - began, 1)
            result["worker_caught_up_before_s"] = round(caught_up, 1)
            result["machine_cpu"] = machine.read()
            document["scenarios"][name] = result
            document["goals"] += [{"scenario": name, **goal} for goal in result.get("goals", [])]
            progress.say(f"{name}: done in {result['duration_s']:.0f} s")
        document["notes"] += bench.notes
        bench.db.close()
    return failed


def _describe(error: BaseException) -> str:
    # A task group wraps the failure that stopped it: report that one, not the group.
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}"


def _describe_stack(stack: BenchStack, config: StackConfig) -> dict[str, Any]:
    settings = stack.settings
    return {
        "temporal": (
            "dev server (temporal server start-dev), headless, SQLite file in WAL mode"
            if config.temporal == "dev"
            else "production server (temporal-server start: frontend, history, matching, worker in one process), "
            "PostgreSQL persistence and SQL visibility on a fresh local cluster"
        )
        + f", fresh namespace {stack.namespace}",
        "temporal_server": config.temporal,
        "temporal_dynamic_config": config.temporal_dynamic_config,
        "app_database": "SQLite, a fresh file (the default backend)"
        if config.database == "sqlite"
        else "PostgreSQL (Debian's server, local, durable defaults), a fresh cluster",
        "object_storage": "MinIO, a fresh data directory",
        "sandbox": {
            "processing_seconds": 0,
            "quota_per_account": SANDBOX_QUOTA,
            "buc_call_throttling": "off",
            "log_level": "warning",
        },
        "api": f"uvicorn api.main:app x {config.apis}, access log off",
        "worker": f"python worker.py x {config.workers}"
        + (
            ' (CHRONOGRAM_WORKER_ROLES=["posts"]), + 1 with ["notifications"]'
            if config.notifications_process
            else ""
        ),
        "worker_settings": {
            "max_concurrent_activities": settings.worker_max_concurrent_activities,
            "max_concurrent_workflow_tasks": settings.worker_max_concurrent_workflow_tasks,
            "max_cached_workflows": settings.worker_max_cached_workflows,
        },
        "api_max_image_upload_bytes": config.api_max_image_upload_bytes,
        "overrides": {f"CHRONOGRAM_{name}": value for name, value in config.extra_env.items()},
        "startup_seconds": stack.startup_seconds,
        "posts_created_via": "POST /v1/posts (every scenario)",
    }


if __name__ == "__main__":
    sys.exit(main())
