"""The real servers Chronogram runs on, started as child processes: by the run command, the tests and the benchmarks.

Starting is synchronous and blocks until the server answers, so callers never race a half-started server.
"""

from __future__ import annotations

import json
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from devstack import tools
from devstack.processes import LineSink, ManagedProcess, ProcessFailed, port_in_use

LOCALHOST = "127.0.0.1"


def _search_attribute_flags(search_attributes: dict[str, str]) -> list[str]:
    return [
        flag for name, kind in search_attributes.items() for flag in ("--search-attribute", f"{name}={kind}")
    ]


@dataclass
class TemporalDevServer:
    process: ManagedProcess
    port: int
    ui_port: int | None
    metrics_port: int | None = None

    @property
    def address(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    @property
    def metrics_url(self) -> str | None:
        return f"http://localhost:{self.metrics_port}/metrics" if self.metrics_port else None

    @property
    def ui_url(self) -> str | None:
        return f"http://localhost:{self.ui_port}" if self.ui_port else None

    @classmethod
    def start(
        cls,
        *,
        sink: LineSink,
        port: int,
        ui_port: int | None,
        db_file: Path | None,
        search_attributes: dict[str, str],
        namespaces: tuple[str, ...] = (),
        log_level: str = "warn",
        metrics_port: int | None = None,
        timeout: float = 60.0,
    ) -> TemporalDevServer:
        """Start ``temporal server start-dev``; ``db_file`` None keeps state in memory, ``ui_port`` None is headless,
        ``metrics_port`` None leaves the server's Prometheus endpoint on a port of its choosing.

        ``namespaces`` are created besides ``default``, each with the ``search_attributes``
        ({name: Keyword|Datetime|...}); these are only applied when a namespace is first created;
        for an existing ``db_file`` call :func:`devstack.temporal_setup.ensure_search_attributes` afterwards.
        """
        argv = [
            str(tools.temporal_cli().path), "server", "start-dev",
            "--ip", LOCALHOST, "--port", str(port),
            "--log-level", log_level, "--log-format", "text",
            *_search_attribute_flags(search_attributes),
            *(flag for namespace in namespaces for flag in ("--namespace", namespace)),
            # Long sleeping workflows and many of them: SQLite in WAL mode is an order of magnitude faster.
            "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
        ]  # fmt: skip
        if db_file is not None:
            db_file.parent.mkdir(parents=True, exist_ok=True)
            argv += ["--db-filename", str(db_file)]
        argv += ["--ui-port", str(ui_port)] if ui_port else ["--headless"]
        if metrics_port is not None:
            argv += ["--metrics-port", str(metrics_port)]
        process = ManagedProcess("temporal", argv, sink=sink).start()
        server = cls(process=process, port=port, ui_port=ui_port, metrics_port=metrics_port)
        process.wait_until_ready(
            lambda: port_in_use(port) and (ui_port is None or port_in_use(ui_port)),
            timeout=timeout,
            what=f"frontend on port {port}",
        )
        return server


@dataclass
class MinioServer:
    process: ManagedProcess
    port: int
    console_port: int

    @property
    def endpoint(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    @property
    def console_url(self) -> str:
        return f"http://localhost:{self.console_port}"

    @classmethod
    def start(
        cls,
        *,
        sink: LineSink,
        data_dir: Path,
        port: int,
        console_port: int,
        access_key: str,
        secret_key: str,
        timeout: float = 60.0,
    ) -> MinioServer:
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(tools.minio_server().path), "server", str(data_dir),
            "--address", f"{LOCALHOST}:{port}", "--console-address", f"{LOCALHOST}:{console_port}", "--quiet",
        ]  # fmt: skip
        env = {
            **os.environ,
            "MINIO_ROOT_USER": access_key,
            "MINIO_ROOT_PASSWORD": secret_key,
            "MINIO_UPDATE": "off",
            "MINIO_BROWSER_REDIRECT": "off",
        }
        process = ManagedProcess("minio", argv, sink=sink, env=env).start()
        server = cls(process=process, port=port, console_port=console_port)
        process.wait_until_ready(server._is_live, timeout=timeout, what=f"health check on port {port}")
        return server

    def _is_live(self) -> bool:
        url = f"http://{self.endpoint}/minio/health/live"
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)


@dataclass
class PostgresServer:
    process: ManagedProcess
    port: int
    database: str
    user: str

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}@{LOCALHOST}:{self.port}/{self.database}"

    @classmethod
    def start(
        cls,
        *,
        sink: LineSink,
        data_dir: Path,
        port: int,
        database: str = "chronogram",
        user: str = "chronogram",
        durable: bool = True,
        timeout: float = 60.0,
    ) -> PostgresServer:
        """Initialise ``data_dir`` on first use and start a server on loopback with trust authentication.

        PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` system user. ``durable=False``
        turns off fsync for throwaway test clusters.
        """
        bindir = tools.postgres_server().path
        run_as = "postgres" if os.geteuid() == 0 else None
        data_dir.mkdir(parents=True, exist_ok=True)
        if run_as is not None:
            account = pwd.getpwnam(run_as)
            data_dir.chmod(0o700)
            shutil.chown(data_dir, account.pw_uid, account.pw_gid)
        if not (data_dir / "PG_VERSION").exists():
            initdb = [
                str(bindir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                user,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ]
            if not durable:
                initdb.append("--no-sync")
            result = subprocess.run(
                ["runuser", "-u", run_as, "--", *initdb] if run_as else initdb,
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise ProcessFailed(
                    f"initdb failed for {data_dir}: {result.stderr.strip() or result.stdout.strip()}"
                )
        argv = [
            str(bindir / "postgres"), "-D", str(data_dir), "-p", str(port),
            "-c", f"listen_addresses={LOCALHOST}", "-c", f"unix_socket_directories={data_dir}",
        ]  # fmt: skip
        if not durable:
            argv += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        # SIGINT is PostgreSQL's "fast" shutdown: it disconnects clients instead of waiting for them.
        process = ManagedProcess(
            "postgres", argv, sink=sink, run_as=run_as, stop_signal=signal.SIGINT
        ).start()
        server = cls(process=process, port=port, database=database, user=user)
        pg_isready = [
            str(bindir / "pg_isready"),
            "-q",
            "-h",
            LOCALHOST,
            "-p",
            str(port),
            "-U",
            user,
            "-d",
            "postgres",
        ]
        process.wait_until_ready(
            lambda: subprocess.run(pg_isready, check=False).returncode == 0,
            timeout=timeout,
            what="pg_isready",
        )
        server._create_database(bindir)
        return server

    def _create_database(self, bindir: Path) -> None:
        createdb = [
            str(bindir / "createdb"),
            "-h",
            LOCALHOST,
            "-p",
            str(self.port),
            "-U",
            self.user,
            self.database,
        ]
        result = subprocess.run(createdb, capture_output=True, text=True, check=False)
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise RuntimeError(f"createdb failed: {result.stderr.strip()}")


# The production server's own ports besides the frontend's: history, matching and worker (gRPC and membership),
# the frontend's membership and HTTP ports. Away from everything the project uses (7233 and 8233-8234 are the dev
# server's, 8000 the API's, 9000-9001 MinIO's, 8900 the sandbox's, 9464 the worker's).
SERVER_PORTS = {
    "frontend_membership": 7933,
    "frontend_http": 7243,
    "history": 7934,
    "history_membership": 7944,
    "matching": 7935,
    "matching_membership": 7945,
    "worker": 7939,
    "worker_membership": 7949,
}


def free_server_ports() -> dict[str, int]:
    """Free ports for :data:`SERVER_PORTS`' roles (tests and benchmarks run several servers side by side). Below
    32768: the server records its membership ports in a smallint column."""
    chosen: dict[str, int] = {}
    candidates = random.sample(range(20000, 32768), 200)
    for port in candidates:
        if len(chosen) == len(SERVER_PORTS):
            break
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((LOCALHOST, port))
            except OSError:
                continue
        chosen[list(SERVER_PORTS)[len(chosen)]] = port
    return chosen


# Embedded in temporal-sql-tool: the module's schema/postgresql/v12 directories.
TEMPORAL_SCHEMAS = {"temporal": "postgresql/v12/temporal", "visibility": "postgresql/v12/visibility"}
# Dynamic config of the production server as the project runs it. Search attributes added at start-up are visible
# at once (as on the dev server; they are added once per namespace, so the extra reads cost nothing afterwards).
SERVER_DYNAMIC_CONFIG: dict[str, object] = {
    "system.forceSearchAttributesCacheRefreshOnRead": True,
    # As docker-compose.temporal.yml: ids fit SQL visibility's columns.
    "limit.maxIDLength": 255,
    "frontend.persistenceMaxQPS": 10000,
    "history.persistenceMaxQPS": 45000,
    # One partition per task queue (Temporal's default is 4): a workflow task that missed its worker's sticky
    # queue goes to the shared one, whose polls visit one partition at a time while the task waits on another. In
    # a 1,000-post burst on this server its posts' tasks waited 36-66 s there (lag p99 86-100 s); with one
    # partition, p99 3.95 s against a floor of 3.24 s (bench/README.md, burst). One partition is one matching
    # host's share of a queue; a deployment that needs more raises the read partitions first, then the write ones.
    "matching.numTaskqueueReadPartitions": 1,
    "matching.numTaskqueueWritePartitions": 1,
}


@dataclass
class TemporalServer:
    """The production Temporal server: frontend, history, matching and worker services (one process here; the
    same binary and config split them across hosts), PostgreSQL for persistence and SQL visibility."""

    process: ManagedProcess
    port: int
    metrics_port: int
    config_dir: Path

    @property
    def address(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://localhost:{self.metrics_port}/metrics"

    @classmethod
    def start(
        cls,
        *,
        sink: LineSink,
        postgres: PostgresServer,
        config_dir: Path,
        port: int,
        metrics_port: int,
        other_ports: dict[str, int] | None = None,
        databases: tuple[str, str] = ("temporal", "temporal_visibility"),
        history_shards: int = 4,
        log_level: str = "warn",
        dynamic_config: dict[str, object] | None = None,
        synchronous_commit: bool = True,
        timeout: float = 120.0,
    ) -> TemporalServer:
        """Apply the schemas (safe to rerun: only missing versions are applied), write the config into
        ``config_dir`` and start the server; returns once its frontend port is open (the caller then registers
        namespaces: :func:`chronogram.temporal.ensure_namespace`). ``other_ports`` overrides
        :data:`SERVER_PORTS` (tests and benchmarks pass free ports). ``history_shards`` is fixed for the life of
        the database. ``synchronous_commit=False`` sets PostgreSQL's ``synchronous_commit`` off for the server's
        databases: a commit no longer waits for its fsync, so a crash of the machine (not of a process) may lose
        the last moments' commits, never corrupt them: the durability of the dev server's SQLite in WAL mode with
        ``synchronous=normal``, for benchmarks that compare the two."""
        tool = tools.temporal_server()
        apply_schemas(postgres, databases)
        if not synchronous_commit:
            _without_synchronous_commit(postgres, databases)
        ports = {**SERVER_PORTS, **(other_ports or {})}
        config_dir.mkdir(parents=True, exist_ok=True)
        (config_dir / "dynamicconfig.yaml").write_text(
            _as_yaml(
                {
                    name: [{"value": value}]
                    for name, value in {**SERVER_DYNAMIC_CONFIG, **(dynamic_config or {})}.items()
                }
            )
        )
        (config_dir / "development.yaml").write_text(
            _as_yaml(
                server_config(
                    postgres=postgres,
                    databases=databases,
                    port=port,
                    metrics_port=metrics_port,
                    ports=ports,
                    history_shards=history_shards,
                    log_level=log_level,
                    dynamic_config_file=config_dir / "dynamicconfig.yaml",
                )
            )
        )
        argv = [
            str(tool.path), "--root", str(config_dir), "--config", ".", "--env", "development",
            "--allow-no-auth", "start",
        ]  # fmt: skip
        process = ManagedProcess("temporal", argv, sink=sink).start()
        process.wait_until_ready(lambda: port_in_use(port), timeout=timeout, what=f"frontend on port {port}")
        return cls(process=process, port=port, metrics_port=metrics_port, config_dir=config_dir)


def _as_yaml(document: dict[str, Any]) -> str:
    # JSON is YAML: the server reads it as its config without a YAML library here.
    return (
        "# Generated by devstack.services (Chronogram); edits are overwritten at the next start.\n"
        + json.dumps(document, indent=2)
    )


def server_config(
    *,
    postgres: PostgresServer,
    databases: tuple[str, str],
    port: int,
    metrics_port: int,
    ports: dict[str, int],
    history_shards: int,
    log_level: str,
    dynamic_config_file: Path,
) -> dict[str, Any]:
    """The server's static config (the layout of the module's config/development-postgres12.yaml)."""

    def store(database: str, connections: int) -> dict[str, Any]:
        return {
            "sql": {
                "pluginName": "postgres12",
                "databaseName": database,
                "connectAddr": f"{LOCALHOST}:{postgres.port}",
                "connectProtocol": "tcp",
                "user": postgres.user,
                "password": "",
                "maxConns": connections,
                "maxIdleConns": connections,
                "maxConnLifetime": "1h",
            }
        }

    def service(grpc: int, membership: int, **more: int) -> dict[str, Any]:
        return {"rpc": {"grpcPort": grpc, "membershipPort": membership, "bindOnIP": LOCALHOST, **more}}

    return {
        "log": {"stdout": True, "level": log_level, "format": "console"},
        "persistence": {
            "defaultStore": "postgres-default",
            "visibilityStore": "postgres-visibility",
            "numHistoryShards": history_shards,
            "datastores": {
                "postgres-default": store(databases[0], 20),
                "postgres-visibility": store(databases[1], 10),
            },
        },
        "global": {
            "membership": {"maxJoinDuration": "30s", "broadcastAddress": LOCALHOST},
            # The module's sample puts metrics on 127.0.0.1:8000, the API's port.
            "metrics": {
                "prometheus": {
                    "framework": "tally",
                    "timerType": "histogram",
                    "listenAddress": f"{LOCALHOST}:{metrics_port}",
                }
            },
        },
        "services": {
            "frontend": service(port, ports["frontend_membership"], httpPort=ports["frontend_http"]),
            "history": service(ports["history"], ports["history_membership"]),
            "matching": service(ports["matching"], ports["matching_membership"]),
            "worker": service(ports["worker"], ports["worker_membership"]),
        },
        "clusterMetadata": {
            "enableGlobalNamespace": False,
            "failoverVersionIncrement": 10,
            "masterClusterName": "active",
            "currentClusterName": "active",
            "clusterInformation": {
                "active": {
                    "enabled": True,
                    "initialFailoverVersion": 1,
                    "rpcName": "frontend",
                    "rpcAddress": f"{LOCALHOST}:{port}",
                }
            },
        },
        "dcRedirectionPolicy": {"policy": "noop"},
        "dynamicConfigClient": {"filepath": str(dynamic_config_file), "pollInterval": "10s"},
    }


def apply_schemas(
    postgres: PostgresServer, databases: tuple[str, str] = ("temporal", "temporal_visibility")
) -> None:
    """Create the server's two databases and bring their schemas to the tool's latest version; safe to rerun
    (``setup-schema -v 0.0`` only adds the version tables when missing, ``update-schema`` applies only the
    versions the database lacks)."""
    sql_tool = tools.temporal_sql_tool()
    for database, schema in zip(databases, TEMPORAL_SCHEMAS.values(), strict=True):
        base = [
            str(sql_tool), "--plugin", "postgres12", "--ep", LOCALHOST, "--port", str(postgres.port),
            "--user", postgres.user, "--db", database,
        ]  # fmt: skip
        created = subprocess.run([*base, "create-database"], capture_output=True, text=True, check=False)
        if created.returncode != 0 and "already exists" not in created.stdout + created.stderr:
            raise ProcessFailed(f"temporal-sql-tool create-database {database}: {_tail(created)}")
        for step in (["setup-schema", "-v", "0.0"], ["update-schema", "--schema-name", schema]):
            result = subprocess.run([*base, *step], capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise ProcessFailed(f"temporal-sql-tool {' '.join(step)} on {database}: {_tail(result)}")


def _without_synchronous_commit(postgres: PostgresServer, databases: tuple[str, str]) -> None:
    conninfo = postgres.url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as connection:
        for database in databases:
            connection.execute(f'ALTER DATABASE "{database}" SET synchronous_commit TO off')


def _tail(result: subprocess.CompletedProcess[str]) -> str:
    return "\n".join((result.stdout + result.stderr).strip().splitlines()[-10:])
