"""The real stack for one benchmark run, on free ports, as child processes that die with the benchmark.

The Temporal dev server (headless, state in a fresh SQLite file) or, with ``temporal="server"``, the production
Temporal server on a fresh local PostgreSQL cluster; either way the run has a fresh namespace of its own. MinIO (fresh data directory), the Graph API
sandbox (no processing delay, no call throttling, a publishing quota no scenario reaches), the production worker
(``python worker.py``), the API (``uvicorn api.main:app``) and the bare worker of bench.baseline. The worker and
the API are configured only through ``CHRONOGRAM_*`` environment variables, as in production; the application
database is a fresh SQLite file (the default backend).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TextIO

import psycopg

from bench import baseline
from bench.baseline import connect_plain
from bench.procinfo import file_size
from chronogram.contracts import SEARCH_ATTRIBUTES
from chronogram.crypto import TokenCipher
from chronogram.settings import PROJECT_ROOT, Settings, WorkerRole
from chronogram.storage import ensure_bucket, make_minio
from chronogram.temporal import ensure_namespace, ensure_search_attributes
from devstack import tools
from devstack.processes import ManagedProcess, ProcessFailed, free_port, port_in_use
from devstack.services import (
    LOCALHOST,
    MinioServer,
    PostgresServer,
    TemporalDevServer,
    TemporalServer,
    free_server_ports,
)

ACCESS_KEY = "chronogram-bench"
SECRET_KEY = "chronogram-bench-secret"
BUCKET = "bench-media"
# No scenario gets near it: the burst publishes 10 posts per account, the sandbox default allows 100.
SANDBOX_QUOTA = 100_000
BENCH_USER = "bench"


@dataclass(frozen=True)
class StackConfig:
    # POST /v1/media refuses images over 8 MiB by default (Instagram's limit); the media scenario uploads a
    # 10 MB JPEG, so the benchmark raises the limit. The rendition sent to Instagram is still at most 8 MiB.
    api_max_image_upload_bytes: int = 16 * 1024 * 1024
    # "sqlite" (the default backend: a fresh file) or "postgres" (a throwaway local server, as in production).
    database: str = "sqlite"
    # "dev": the Temporal dev server (SQLite); "server": the production server on a local PostgreSQL cluster (the
    # app database's, when that is PostgreSQL too).
    temporal: str = "dev"
    # Worker processes, for the product and, alike, for the bare baseline. One is the default deployment; more
    # shows whether a limit is that of one Python process (its GIL) or of the system.
    workers: int = 1
    # API processes (uvicorn api.main:app), each on a port of its own; the scale-out scenario spreads its
    # requests over all of them (the others use the first). More than one wants the PostgreSQL app database.
    apis: int = 1
    # Temporal dynamic config (--dynamic-config-value NAME=JSON on the dev server; the server's file), e.g.
    # {"history.timerProcessorMaxTimeShift": '"100ms"'}. Empty: the server's defaults, what is measured otherwise.
    temporal_dynamic_config: dict[str, str] = field(default_factory=dict)
    # Every other CHRONOGRAM_* setting stays at its default, so the figures are those of a default deployment.
    extra_env: dict[str, str] = field(default_factory=dict)
    # True: the notifications (webhook delivery, the outbox's dispatcher) in a worker process of their own
    # (CHRONOGRAM_WORKER_ROLES), the posts in the others. False (the default deployment): one process runs both; the
    # two measured alike (bench/README.md, notification latency).
    notifications_process: bool = False


@dataclass
class BenchStack:
    workdir: Path
    log: TextIO
    config: StackConfig
    temporal: TemporalDevServer | TemporalServer | None = None
    minio: MinioServer | None = None
    postgres: PostgresServer | None = None
    sandbox: ManagedProcess | None = None
    worker: ManagedProcess | None = None
    api: ManagedProcess | None = None
    bare_worker: ManagedProcess | None = None
    # A second production worker, while the chaos scenario kills one at a time (a deployment runs more than one).
    spare_worker: ManagedProcess | None = None
    # The notifications' worker (StackConfig.notifications_process).
    notifier: ManagedProcess | None = None
    extra_workers: list[ManagedProcess] = field(default_factory=list)
    extra_apis: list[ManagedProcess] = field(default_factory=list)
    extra_api_urls: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    settings: Settings = field(default_factory=Settings)
    sandbox_url: str = ""
    api_url: str = ""
    api_key: str = ""
    startup_seconds: dict[str, float] = field(default_factory=dict)
    # A fresh namespace per run, on either server: nothing of an earlier run is in the figures.
    namespace: str = field(default_factory=lambda: f"bench-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    _cleanup: list[Callable[[], None]] = field(default_factory=list)

    @property
    def app_db(self) -> Path:
        """The SQLite file (unused with PostgreSQL)."""
        return self.workdir / "chronogram.db"

    @property
    def temporal_db(self) -> Path:
        return self.workdir / "temporal.db"

    def temporal_database_bytes(self) -> int:
        """What Temporal keeps on disk: the dev server's SQLite file, or the production server's two PostgreSQL
        databases (all namespaces': this run's is the only one)."""
        if not isinstance(self.temporal, TemporalServer):
            return file_size(self.temporal_db)
        assert self.postgres is not None
        with psycopg.connect(self.postgres.url.replace("postgresql+psycopg", "postgresql")) as connection:
            row = connection.execute(
                "SELECT sum(pg_database_size(datname)) FROM pg_database"
                " WHERE datname IN ('temporal', 'temporal_visibility')"
            ).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def processes(self) -> dict[str, ManagedProcess]:
        named = {
            "temporal": self.temporal.process if self.temporal else None,
            "minio": self.minio.process if self.minio else None,
            "postgres": self.postgres.process if self.postgres else None,
            "sandbox": self.sandbox,
            "worker": self.worker,
            "api": self.api,
            "bare_worker": self.bare_worker,
            "worker_spare": self.spare_worker,
            "worker_notifications": self.notifier,
        }
        for index, process in enumerate(self.extra_workers, start=2):
            named[process.name + str(index // 2 + 1)] = process
        for index, process in enumerate(self.extra_apis, start=2):
            named[f"api{index}"] = process
        return {name: process for name, process in named.items() if process is not None}

    def pids(self) -> dict[str, int]:
        return {name: process.pid for name, process in self.processes().items() if process.is_running()}

    def check_alive(self) -> None:
        """Raise if a child died: every figure after that would be meaningless."""
        for name, process in self.processes().items():
            if not process.is_running():
                raise ProcessFailed(f"{name} exited during the benchmark:\n{process.recent_output()}")

    # --- bring-up ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        if self.config.database == "postgres" or self.config.temporal == "server":
            self._timed("postgres", self._start_postgres)
        self._timed("temporal", self._start_temporal)
        self._timed("minio", self._start_minio)
        self._timed("sandbox", self._start_sandbox)
        self._configure()
        self._timed("api", self._start_api)
        for _ in range(self.config.apis - 1):
            self._timed("extra_apis", self._start_extra_api)
        self._timed("worker", self._start_worker)
        self._timed("bare_worker", self._start_bare_worker)
        for _ in range(self.config.workers - 1):
            self._timed("extra_workers", self._start_extra_workers)
        self.api_key = self._create_api_user()

    def _timed(self, name: str, step: Callable[[], None]) -> None:
        began = time.monotonic()
        step()
        self.startup_seconds[name] = round(time.monotonic() - began, 2)

    def _start_temporal(self, port: int | None = None) -> None:
        if self.config.temporal == "server":
            assert self.postgres is not None
            self.temporal = TemporalServer.start(
                sink=self.log,
                postgres=self.postgres,
                config_dir=self.workdir / "temporal-server",
                port=port or free_port(),
                metrics_port=free_port(),
                other_ports=free_server_ports(),
                log_level="error",
                # As the dev server it is compared with (SQLite in WAL mode, synchronous=normal): commits do not
                # wait for their fsync. On this VM's disk, waiting for them made the burst crawl (bench/README.md).
                synchronous_commit=False,
                dynamic_config={
                    name: json.loads(value) for name, value in self.config.temporal_dynamic_config.items()
                },
            )
            return
        tools.temporal_cli()  # builds it on a machine that never ran `make tools`
        if self.config.temporal_dynamic_config:
            self.temporal = self._start_temporal_with_dynamic_config(port)
            return
        self.temporal = TemporalDevServer.start(
            sink=self.log,
            port=port or free_port(),
            ui_port=None,
            # A file, not memory: sleeping posts cost disk and the idle scenario reports how much.
            db_file=self.temporal_db,
            search_attributes={key.name: key._metadata_type for key in SEARCH_ATTRIBUTES},
            log_level="error",
        )

    def _start_temporal_with_dynamic_config(self, port: int | None = None) -> TemporalDevServer:
        """devstack's TemporalDevServer.start has no way to pass dynamic config; this mirrors its command line
        (headless, file database in WAL mode, the search attributes) and adds the values."""
        port = port or free_port()
        argv = [
            str(tools.temporal_cli().path), "server", "start-dev", "--ip", LOCALHOST, "--port", str(port),
            "--log-level", "error", "--log-format", "text", "--headless", "--db-filename", str(self.temporal_db),
            "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
        ]  # fmt: skip
        for key in SEARCH_ATTRIBUTES:
            argv += ["--search-attribute", f"{key.name}={key._metadata_type}"]
        for name, value in self.config.temporal_dynamic_config.items():
            argv += ["--dynamic-config-value", f"{name}={value}"]
        process = ManagedProcess("temporal", argv, sink=self.log).start()
        process.wait_until_ready(lambda: port_in_use(port), timeout=60, what=f"frontend on port {port}")
        return TemporalDevServer(process=process, port=port, ui_port=None)

    def _start_minio(self) -> None:
        self.minio = MinioServer.start(
            sink=self.log,
            data_dir=self.workdir / "minio",
            port=free_port(),
            console_port=free_port(),
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
        )

    def _start_postgres(self) -> None:
        # Outside the run's private directory: as root, PostgreSQL runs as the postgres user, who must reach it.
        data_dir = Path(tempfile.mkdtemp(prefix="chronogram-bench-pg-"))
        data_dir.chmod(0o755)
        self._cleanup.append(lambda: shutil.rmtree(data_dir, ignore_errors=True))
        # Durable, as a production server: the comparison with SQLite must not be won by skipping fsync.
        self.postgres = PostgresServer.start(sink=self.log, data_dir=data_dir / "data", port=free_port())

    def _start_sandbox(self) -> None:
        port = free_port()
        self.sandbox_url = f"http://{LOCALHOST}:{port}"
        argv = [
            sys.executable, "-m", "sandbox", "--port", str(port),
            "--image-processing-seconds", "0", "--video-processing-seconds", "0",
            "--carousel-processing-seconds", "0",
            "--quota", str(SANDBOX_QUOTA), "--buc-calls-per-hour", "0",
            "--no-demo-account", "--log-level", "warning",
        ]  # fmt: skip
        self.sandbox = self._python_child("sandbox", argv)
        self.sandbox.wait_until_ready(
            lambda: _http_ok(f"{self.sandbox_url}/_sandbox/clock"), timeout=60, what="the sandbox's admin API"
        )

    def _configure(self) -> None:
        assert self.temporal is not None and self.minio is not None
        api_port = free_port()
        self.api_url = f"http://{LOCALHOST}:{api_port}"
        values = {
            "TEMPORAL_ADDRESS": self.temporal.address,
            "TEMPORAL_NAMESPACE": self.namespace,
            "DATABASE_URL": self.postgres.url
            if self.postgres is not None and self.config.database == "postgres"
            else f"sqlite:///{self.app_db}",
            "S3_ENDPOINT": self.minio.endpoint,
            "S3_ACCESS_KEY": ACCESS_KEY,
            "S3_SECRET_KEY": SECRET_KEY,
            "MEDIA_BUCKET": BUCKET,
            "GRAPH_API_BASE_URL": self.sandbox_url,
            # A key of our own: the development default would write .data/token.key in the checkout.
            "TOKEN_ENCRYPTION_KEY": TokenCipher.generate_key(),
            "API_HOST": LOCALHOST,
            "API_PORT": str(api_port),
            "API_MAX_IMAGE_UPLOAD_BYTES": str(self.config.api_max_image_upload_bytes),
            # The punctuality scenario's webhook receiver runs in the benchmark's process, on http://127.0.0.1.
            "WEBHOOK_ALLOW_HTTP_LOCALHOST": "true",
            # Any free port for the workers' metrics and health endpoint: a run never collides with a worker
            # already on the default port, nor its several workers with each other.
            "WORKER_METRICS_PORT": "0",
            **self.config.extra_env,
        }
        # Nothing CHRONOGRAM_* from the caller's shell leaks into the children: the run is reproducible.
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("CHRONOGRAM_")}
        self.env.update({f"CHRONOGRAM_{key}": value for key, value in values.items()})
        # model_validate, not the constructor: exactly these values and the defaults, nothing from the environment.
        self.settings = Settings.model_validate({key.lower(): value for key, value in values.items()})
        ensure_bucket(make_minio(self.settings), BUCKET)
        asyncio.run(self._register_namespace())

    async def _register_namespace(self) -> None:
        deadline = time.monotonic() + 90
        while True:  # a server just started can answer "not healthy yet" for a moment
            try:
                client = await connect_plain(self.settings)
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        await ensure_namespace(client, self.namespace, retention=timedelta(days=1))
        await ensure_search_attributes(client, self.namespace)

    def _start_api(self) -> None:
        argv = [
            sys.executable, "-m", "uvicorn", "api.main:app",
            "--host", LOCALHOST, "--port", str(self.settings.api_port),
            # An access line per request would be written and copied through a pipe by this process, on the same
            # two cores: a cost of the benchmark, not of the API.
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        self.api = self._python_child("api", argv)
        self.api.wait_until_ready(lambda: _http_ok(f"{self.api_url}/readyz"), timeout=90, what="/readyz")

    def _start_extra_api(self) -> None:
        port = free_port()
        url = f"http://{LOCALHOST}:{port}"
        argv = [
            sys.executable, "-m", "uvicorn", "api.main:app", "--host", LOCALHOST, "--port", str(port),
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        api = self._python_child("api", argv)
        self.extra_apis.append(api)
        api.wait_until_ready(lambda: _http_ok(f"{url}/readyz"), timeout=90, what="/readyz")
        self.extra_api_urls.append(url)

    @property
    def api_urls(self) -> list[str]:
        return [self.api_url, *self.extra_api_urls]

    def product_workers(self) -> list[ManagedProcess]:
        """Every process of the product's worker, the first one first."""
        first = [self.worker] if self.worker is not None else []
        return first + [process for process in self.extra_workers if process.name == "worker"]

    def replace_worker(self, dead: ManagedProcess) -> ManagedProcess:
        """Start a worker in place of ``dead`` (killed by a scenario), so that later scenarios have as many."""
        worker = self._worker_child()
        worker.wait_until_ready(
            lambda: "worker polling task queue" in worker.recent_output(), timeout=60, what="its first poll"
        )
        if dead is self.worker:
            self.worker = worker
        else:
            self.extra_workers[self.extra_workers.index(dead)] = worker
        return worker

    def _start_worker(self) -> None:
        self.worker = self._polling_worker()
        if self.config.notifications_process:
            notifier = self.notifier = self._worker_child(
                WorkerRole.NOTIFICATIONS, name="worker_notifications"
            )
            notifier.wait_until_ready(
                lambda: "worker polling task queue" in notifier.recent_output(),
                timeout=60,
                what="its first poll",
            )

    def _worker_child(self, role: WorkerRole = WorkerRole.POSTS, *, name: str = "worker") -> ManagedProcess:
        """A product worker: the posts only when the notifications have a process of their own, else both."""
        argv = [sys.executable, "worker.py"]
        if not self.config.notifications_process:
            return self._python_child(name, argv)
        env = {**(self.env or os.environ), "CHRONOGRAM_WORKER_ROLES": json.dumps([role.value])}
        return ManagedProcess(name, argv, sink=self.log, env=env, cwd=PROJECT_ROOT).start()

    def _polling_worker(self) -> ManagedProcess:
        worker = self._worker_child()
        worker.wait_until_ready(
            lambda: "worker polling task queue" in worker.recent_output(), timeout=60, what="its first poll"
        )
        return worker

    def _start_extra_workers(self) -> None:
        worker = self._worker_child()
        self.extra_workers.append(worker)
        worker.wait_until_ready(
            lambda: "worker polling task queue" in worker.recent_output(), timeout=60, what="its first poll"
        )
        bare = self._python_child("bare_worker", self._bare_argv())
        self.extra_workers.append(bare)
        bare.wait_until_ready(
            lambda: baseline.READY_LINE in bare.recent_output(), timeout=60, what="its first poll"
        )

    def _start_bare_worker(self) -> None:
        bare = self.bare_worker = self._python_child("bare", self._bare_argv())
        bare.wait_until_ready(
            lambda: baseline.READY_LINE in bare.recent_output(), timeout=60, what="its first poll"
        )

    @property
    def bare_tokens_file(self) -> Path:
        return self.workdir / baseline.TOKENS_FILE

    def _bare_argv(self) -> list[str]:
        return [sys.executable, "-m", "bench.baseline", "--tokens-file", str(self.bare_tokens_file)]

    def _python_child(self, name: str, argv: list[str]) -> ManagedProcess:
        return ManagedProcess(name, argv, sink=self.log, env=self.env or None, cwd=PROJECT_ROOT).start()

    def _create_api_user(self) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "api.admin", "create-user", BENCH_USER],
            env=self.env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ProcessFailed(f"api.admin create-user failed: {result.stderr.strip()}")
        return result.stdout.strip().splitlines()[-1]

    # --- crashes (the chaos scenario) ---------------------------------------------------------------------------

    def start_spare_worker(self) -> None:
        self.spare_worker = self._polling_worker()

    def stop_spare_worker(self) -> None:
        if self.spare_worker is not None:
            self.spare_worker.stop()
            self.spare_worker = None

    def kill_and_restart_worker(self, *, spare: bool = False) -> float:
        """SIGKILL the worker (or the spare), as a machine dies, and start a new one at once; returns the seconds
        until the new one polls."""
        victim = self.spare_worker if spare else self.worker
        assert victim is not None
        began = time.monotonic()
        victim.kill()
        if spare:
            self.spare_worker = self._polling_worker()
        else:
            self.worker = self._polling_worker()
        return time.monotonic() - began

    def restart_temporal(self) -> float:
        """Stop the Temporal dev server and start it again on the same port and database file (the workers and
        clients reconnect by themselves); returns the seconds the frontend was away."""
        assert self.temporal is not None
        port = self.temporal.port
        began = time.monotonic()
        self.temporal.process.stop()
        self._start_temporal(port)
        return time.monotonic() - began

    # --- teardown ---------------------------------------------------------------------------------------------

    def stop(self) -> None:
        for process in reversed(list(self.processes().values())):
            with contextlib.suppress(Exception):
                process.stop()
        for cleanup in self._cleanup:
            cleanup()


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


@contextlib.contextmanager
def running_stack(
    log: TextIO, config: StackConfig | None = None, workdir: Path | None = None
) -> Iterator[BenchStack]:
    """Start everything in a fresh directory (deleted afterwards unless given), yield it, stop everything."""
    with contextlib.ExitStack() as cleanup:
        if workdir is not None:
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="chronogram-bench-")))
        stack = BenchStack(workdir=workdir, log=log, config=config or StackConfig())
        cleanup.callback(stack.stop)
        stack.start()
        yield stack
