"""The run command: bring up Chronogram's whole stack locally, as child processes with prefixed logs.

    python -m devstack                      # (what `make dev` runs)
    python -m devstack --temporal server    # (`make dev TEMPORAL=server`): production-like

Starts what is not configured as external: the Temporal dev server (state in .data/temporal.db, Web UI),
MinIO (data in .data/minio), the Graph API sandbox, then the worker and the API. With ``--temporal server``, the
production Temporal server (frontend, history, matching and worker services, built into the tool cache) on
PostgreSQL (a cluster in .data/postgres) replaces the dev server, and the application database is a database on
that same PostgreSQL instead of SQLite. Setting
CHRONOGRAM_TEMPORAL_ADDRESS, CHRONOGRAM_S3_ENDPOINT or CHRONOGRAM_GRAPH_API_BASE_URL (environment or .env) points
at an existing service instead, and nothing local is started for it. Ctrl-C stops everything, in reverse order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TextIO

from temporalio.api.namespace.v1 import NamespaceConfig
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, UpdateNamespaceRequest

from api.admin import ensure_dev_user
from chronogram.contracts import SEARCH_ATTRIBUTES
from chronogram.db import make_engine
from chronogram.settings import DATA_DIR, PROJECT_ROOT, Settings
from chronogram.storage import ensure_bucket, make_minio
from chronogram.temporal import connect_temporal, ensure_namespace, ensure_search_attributes
from devstack import tools
from devstack.processes import LineSink, ManagedProcess, ProcessFailed, port_in_use
from devstack.services import SERVER_PORTS, MinioServer, PostgresServer, TemporalDevServer, TemporalServer

TEMPORAL_PORT, TEMPORAL_UI_PORT, TEMPORAL_METRICS_PORT = 7233, 8233, 8234
MINIO_PORT, MINIO_CONSOLE_PORT = 9000, 9001
SANDBOX_PORT = 8900
MAIL_PORT = 1025
# Production-like (--temporal server): PostgreSQL beside any system one on 5432.
POSTGRES_PORT = 5433
PID_FILE = DATA_DIR / "devstack.pid"
# Dev-server namespaces default to 24 h retention, after which the histories replay tests want are gone.
DEV_RETENTION = timedelta(days=30)


class _Sink:
    """Serialises prefixed lines from several log pumps onto one terminal."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            return self._out.write(text)

    def flush(self) -> None:
        with self._lock:
            self._out.flush()


@dataclass
class Stack:
    settings: Settings
    sink: LineSink
    children: list[ManagedProcess] = field(default_factory=list)
    urls: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    child_env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    temporal_log_level: str = "error"
    # "dev": the dev server (SQLite); "server": the production server on PostgreSQL, as is the app database.
    temporal_kind: str = "dev"

    def external(self, name: str) -> bool:
        return name in self.settings.model_fields_set

    def say(self, message: str) -> None:
        self.sink.write(f"[devstack] {message}\n")
        self.sink.flush()

    def stop_all(self) -> None:
        for child in reversed(self.children):
            if child.is_running():
                self.say(f"stopping {child.name} ...")
            child.stop()
        self.children.clear()
        PID_FILE.unlink(missing_ok=True)


def _wanted_ports(stack: Stack) -> dict[int, str]:
    ports = {stack.settings.api_port: "API", stack.settings.worker_metrics_port: "worker metrics"}
    if not stack.external("temporal_address"):
        ports |= {TEMPORAL_PORT: "Temporal frontend", TEMPORAL_METRICS_PORT: "Temporal server metrics"}
        if stack.temporal_kind == "dev":
            ports[TEMPORAL_UI_PORT] = "Temporal Web UI"
        else:
            ports |= dict.fromkeys(SERVER_PORTS.values(), "Temporal server (internal)")
    if stack.temporal_kind == "server":
        ports[POSTGRES_PORT] = "PostgreSQL"
    if not stack.external("s3_endpoint"):
        ports |= {MINIO_PORT: "MinIO", MINIO_CONSOLE_PORT: "MinIO console"}
    if not stack.external("graph_api_base_url"):
        ports[SANDBOX_PORT] = "Graph API sandbox"
    if not stack.external("smtp_host"):
        ports[MAIL_PORT] = "SMTP sink"
    return ports


def _already_running(stack: Stack) -> str | None:
    """Explain, in words, why the stack cannot start here; None if it can."""
    if PID_FILE.exists():
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            pid = int(PID_FILE.read_text().split()[0])
            os.kill(pid, 0)
            return (
                f"Chronogram's dev stack is already running (pid {pid}, started from {PROJECT_ROOT}).\n"
                f"  API http://localhost:{stack.settings.api_port}/docs, Temporal UI http://localhost:{TEMPORAL_UI_PORT}\n"
                f"  Stop it with Ctrl-C in its terminal, or: kill {pid}"
            )
        PID_FILE.unlink(missing_ok=True)  # left by a run that was killed outright
    busy = [f"  port {port} ({what})" for port, what in _wanted_ports(stack).items() if port_in_use(port)]
    if busy:
        return (
            "These ports are already taken by another program:\n" + "\n".join(busy) + "\n"
            "Stop it, or point Chronogram at that service instead (CHRONOGRAM_TEMPORAL_ADDRESS, "
            "CHRONOGRAM_S3_ENDPOINT, CHRONOGRAM_GRAPH_API_BASE_URL, CHRONOGRAM_API_PORT)."
        )
    return None


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=1) as response:
        return bool(response.status < 500)


async def _prepare_temporal(settings: Settings, *, ours: bool) -> list[str]:
    deadline = time.monotonic() + 30
    while True:
        try:
            client = await connect_temporal(settings)
            break
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    if ours:
        # The production server starts with no namespace at all; the dev server with "default".
        await ensure_namespace(client, settings.temporal_namespace, retention=DEV_RETENTION)
    added = await ensure_search_attributes(client, settings.temporal_namespace)
    if not ours:
        return added  # someone else's cluster: its retention is its operators' decision
    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=settings.temporal_namespace)
    )
    if described.config.workflow_execution_retention_ttl.ToTimedelta() < DEV_RETENTION:
        # Only the retention field: sending back the whole config would re-submit search attribute aliases.
        config = NamespaceConfig()
        config.workflow_execution_retention_ttl.FromTimedelta(DEV_RETENTION)
        await client.workflow_service.update_namespace(
            UpdateNamespaceRequest(namespace=settings.temporal_namespace, config=config)
        )
    return added


def _start_python(stack: Stack, name: str, args: list[str], ready_url: str | None) -> None:
    process = ManagedProcess(
        name, [sys.executable, *args], sink=stack.sink, env=stack.child_env, cwd=PROJECT_ROOT
    ).start()
    stack.children.append(process)
    if ready_url:
        process.wait_until_ready(lambda: _http_ok(ready_url), timeout=60, what=ready_url)
    else:
        time.sleep(1.5)  # no port to ask: give it a moment to fail loudly on bad settings
        if not process.is_running():
            raise ProcessFailed(f"{name} exited at start:\n{process.recent_output()}")


def bring_up(stack: Stack) -> None:
    settings = stack.settings
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    PID_FILE.write_text(f"{os.getpid()}\n")

    postgres: PostgresServer | None = None
    if stack.temporal_kind == "server":
        stack.say(f"starting PostgreSQL on port {POSTGRES_PORT} (data in .data/postgres) ...")
        postgres = PostgresServer.start(sink=stack.sink, data_dir=DATA_DIR / "postgres", port=POSTGRES_PORT)
        stack.children.append(postgres.process)
        stack.urls.append(
            ("PostgreSQL", f"{postgres.url}  (databases chronogram, temporal, temporal_visibility)")
        )
    if stack.external("temporal_address"):
        stack.say(f"using external Temporal at {settings.temporal_address}")
    elif postgres is not None:
        tools.temporal_server()  # builds on the first run (minutes); say so instead of looking stuck
        stack.say(
            "starting the Temporal server (frontend, history, matching, worker; state in PostgreSQL) ..."
        )
        server = TemporalServer.start(
            sink=stack.sink,
            postgres=postgres,
            config_dir=DATA_DIR / "temporal-server",
            port=TEMPORAL_PORT,
            metrics_port=TEMPORAL_METRICS_PORT,
            log_level=stack.temporal_log_level,
        )
        stack.children.append(server.process)
        settings = settings.model_copy(update={"temporal_address": server.address})
        stack.child_env["CHRONOGRAM_TEMPORAL_ADDRESS"] = server.address
        stack.urls.append(("Temporal server metrics", server.metrics_url))
        stack.notes.append(
            "No Web UI with the production server: `temporal workflow list --address "
            f"{server.address}` (the CLI from the tool cache), or run temporalio/ui against it"
        )
    else:
        tools.temporal_cli()  # builds on the first run; say so instead of looking stuck
        stack.say("starting the Temporal dev server (state in .data/temporal.db) ...")
        temporal = TemporalDevServer.start(
            sink=stack.sink,
            port=TEMPORAL_PORT,
            ui_port=TEMPORAL_UI_PORT,
            db_file=DATA_DIR / "temporal.db",
            search_attributes={key.name: key._metadata_type for key in SEARCH_ATTRIBUTES},
            log_level=stack.temporal_log_level,
            metrics_port=TEMPORAL_METRICS_PORT,
        )
        stack.children.append(temporal.process)
        settings = settings.model_copy(update={"temporal_address": temporal.address})
        stack.child_env["CHRONOGRAM_TEMPORAL_ADDRESS"] = temporal.address
        stack.urls.append(
            ("Temporal Web UI", f"{temporal.ui_url}/namespaces/{settings.temporal_namespace}/workflows")
        )
        stack.urls.append(("Temporal server metrics", f"{temporal.metrics_url}"))
    added = asyncio.run(_prepare_temporal(settings, ours=not stack.external("temporal_address")))
    if added:
        stack.say(f"registered search attributes: {', '.join(added)}")

    if stack.external("s3_endpoint"):
        stack.say(f"using external object storage at {settings.s3_endpoint}")
    else:
        stack.say("starting MinIO (data in .data/minio) ...")
        minio = MinioServer.start(
            sink=stack.sink,
            data_dir=DATA_DIR / "minio",
            port=MINIO_PORT,
            console_port=MINIO_CONSOLE_PORT,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key.get_secret_value(),
        )
        stack.children.append(minio.process)
        stack.child_env["CHRONOGRAM_S3_ENDPOINT"] = minio.endpoint
        settings = settings.model_copy(update={"s3_endpoint": minio.endpoint})
        stack.urls.append(("MinIO console", f"{minio.console_url}  (user {settings.s3_access_key})"))
    if ensure_bucket(make_minio(settings), settings.media_bucket):
        stack.say(f"created bucket {settings.media_bucket}")

    if stack.external("graph_api_base_url"):
        stack.say(f"using the Graph API at {settings.graph_api_base_url}")
    else:
        stack.say("starting the Graph API sandbox ...")
        sandbox_url = f"http://localhost:{SANDBOX_PORT}"
        _start_python(
            stack, "sandbox", ["-m", "sandbox", "--port", str(SANDBOX_PORT)], f"{sandbox_url}/_sandbox/calls"
        )
        stack.child_env["CHRONOGRAM_GRAPH_API_BASE_URL"] = sandbox_url
        stack.urls.append(("Graph API sandbox", f"{sandbox_url}/docs"))

    if stack.external("smtp_host"):
        stack.say(f"sending email through {settings.smtp_host}:{settings.smtp_port}")
    else:
        stack.say("starting the SMTP sink (notification emails are printed here) ...")
        mail = ManagedProcess(
            "mail",
            [sys.executable, "-m", "devstack.mail_sink", "--port", str(MAIL_PORT)],
            sink=stack.sink,
            env=stack.child_env,
            cwd=PROJECT_ROOT,
        ).start()
        stack.children.append(mail)
        mail.wait_until_ready(
            lambda: port_in_use(MAIL_PORT), timeout=30, what=f"SMTP sink on port {MAIL_PORT}"
        )
        stack.child_env |= {"CHRONOGRAM_SMTP_HOST": "127.0.0.1", "CHRONOGRAM_SMTP_PORT": str(MAIL_PORT)}
        stack.urls.append(("SMTP sink", f"localhost:{MAIL_PORT} (mail shows in these logs)"))
    # Webhooks to a receiver on this machine (http://localhost:...) are allowed in development only.
    if not stack.external("webhook_allow_http_localhost"):
        stack.child_env["CHRONOGRAM_WEBHOOK_ALLOW_HTTP_LOCALHOST"] = "true"

    if postgres is not None and not stack.external("database_url"):
        settings = settings.model_copy(update={"database_url": postgres.url})
        stack.child_env["CHRONOGRAM_DATABASE_URL"] = postgres.url
    database = "external" if stack.external("database_url") else ("PostgreSQL" if postgres else "SQLite")
    stack.say(f"application database: {database} ({_redacted(settings.database_url)})")
    dev_key = ensure_dev_user(make_engine(settings.database_url))
    stack.notes.append(
        f"Development API key (shown once, stored only hashed): {dev_key}"
        if dev_key
        else "API user 'dev' exists; a new key: .venv/bin/python -m api.admin create-key dev"
    )

    stack.say("starting the worker ...")
    worker_url = f"http://localhost:{settings.worker_metrics_port}"
    _start_python(stack, "worker", ["worker.py"], f"{worker_url}/healthz")
    stack.urls.append(("Worker metrics, health, readiness", f"{worker_url}/metrics  /healthz  /readyz"))
    stack.say("starting the API ...")
    api_url = f"http://localhost:{settings.api_port}"
    _start_python(
        stack,
        "api",
        ["-m", "uvicorn", "api.main:app", "--host", settings.api_host, "--port", str(settings.api_port)],
        f"{api_url}/healthz",
    )
    stack.urls.insert(0, ("API docs (OpenAPI)", f"{api_url}/docs"))
    stack.urls.insert(1, ("API metrics", f"{api_url}/metrics"))


def _redacted(url: str) -> str:
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}" if ":" in credentials else url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--temporal-log-level",
        default="error",
        choices=["debug", "info", "warn", "error"],
        help="the dev server's own log level (default error: at warn it is chatty, above all while stopping)",
    )
    parser.add_argument(
        "--temporal",
        default="dev",
        choices=["dev", "server"],
        help="dev: the Temporal dev server on SQLite (default); server: the production Temporal server on "
        "PostgreSQL, and the application database on PostgreSQL too (`make dev TEMPORAL=server`)",
    )
    args = parser.parse_args(argv)
    stack = Stack(
        settings=Settings(),
        sink=_Sink(sys.stdout),
        temporal_log_level=args.temporal_log_level,
        temporal_kind=args.temporal,
    )
    reason = _already_running(stack)
    if reason:
        print(reason, file=sys.stderr)
        return 1

    stopping = threading.Event()

    def request_stop(_signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        bring_up(stack)
    except Exception as error:  # whatever failed, the children already started must not be left running
        stack.say(f"could not start the stack: {error}")
        stack.stop_all()
        return 1
    width = max(len(name) for name, _ in stack.urls)
    banner = "\n".join(f"    {name:<{width}}  {url}" for name, url in stack.urls)
    notes = "".join(f"\n    {note}" for note in stack.notes)
    stack.say(f"Chronogram is up (Ctrl-C stops everything):\n{banner}{notes}")

    exit_code = 0
    while not stopping.wait(0.5):
        crashed = [child for child in stack.children if not child.is_running()]
        if crashed:
            stack.say(f"{crashed[0].name} exited unexpectedly; stopping the stack")
            exit_code = 1
            break
    stack.stop_all()
    stack.say("stopped")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
