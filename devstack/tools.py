"""Pinned external tools: the Temporal CLI dev server, the production Temporal server and its schema tool, the
Java time-skipping test server, MinIO, PostgreSQL.

Built or downloaded once into a cache outside the clone (``~/.cache/chronogram/tools`` or
``$CHRONOGRAM_TOOLS_DIR``), one directory per tool and version, so every clone, CI run and later session
reuses them. A build goes to a temporary directory and is renamed into place only when it succeeded, so an
interrupted build never leaves a half-built tool that later runs would trust.

Standard library only: this runs before the project's virtual environment exists.

    python -m devstack.tools            # install whatever is missing, print the paths
    python -m devstack.tools --check    # report, install nothing (exit 1 if something is missing)
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

TEMPORAL_CLI_VERSION = "1.5.1"  # newest tag `go install` can build: later tags carry a replace directive
# MinIO tags are RELEASE.<date>, not semver, so the module proxy only knows commits; this is the last commit
# of the upstream repository (2026-02-12).
MINIO_MODULE_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
TEMPORAL_TEST_SERVER_VERSION = "1.38.0"
# The production (multi-service) Temporal server: the version the dev server above embeds, so that what is tested
# on one is what runs on the other. Built from the Go module proxy with its schema tool; the PostgreSQL schemas it
# applies (schema/postgresql/v12) are embedded in the tool.
TEMPORAL_SERVER_VERSION = "1.29.1"
POSTGRES_DEBIAN_PACKAGE = "postgresql"

_TEST_SERVER_POM = Path(__file__).with_name("temporal-test-server.pom.xml")


class ToolError(RuntimeError):
    """A tool could not be provided; the message says what was tried and what to do."""


def tools_dir() -> Path:
    configured = os.environ.get("CHRONOGRAM_TOOLS_DIR")
    base = Path(configured) if configured else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return (base if configured else base / "chronogram" / "tools").expanduser().resolve()


@dataclass(frozen=True)
class Tool:
    name: str
    path: Path
    how: str  # "cached", "built in 412 s", "on PATH", ...


def log(message: str) -> None:
    print(f"[install-tools] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _exclusive(name: str) -> Iterator[None]:
    """Serialise builds of one tool across processes (a dev run and a CI run may start together)."""
    locks = tools_dir() / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _staging(final_dir: Path) -> Iterator[Path]:
    """Yield a scratch directory that becomes ``final_dir`` only if the block succeeds."""
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.", dir=final_dir.parent))
    scratch.chmod(0o755)
    try:
        yield scratch
        if final_dir.exists():
            shutil.rmtree(final_dir)
        scratch.rename(final_dir)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)


def _run(command: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    log("$ " + " ".join(command))
    completed = subprocess.run(
        command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if completed.returncode != 0:
        tail = "\n".join(completed.stdout.splitlines()[-40:])
        raise ToolError(f"command failed with exit code {completed.returncode}: {' '.join(command)}\n{tail}")


def _go_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


def _go_install(package: str, version: str, dest: Path, ldflags: str = "") -> None:
    go = shutil.which("go")
    if go is None:
        raise ToolError("Go is not installed")
    env = {
        **os.environ,
        # go.mod of both tools asks for a newer Go than some distributions ship; let Go fetch it via the proxy.
        "GOTOOLCHAIN": os.environ.get("GOTOOLCHAIN", "auto")
        if os.environ.get("GOTOOLCHAIN") != "local"
        else "auto",
        "CGO_ENABLED": "0",
        "GOBIN": str(dest),
        "GOFLAGS": "-buildvcs=false",
    }
    command = [go, "install"]
    if ldflags:
        command += ["-ldflags", ldflags]
    # Run outside any module or workspace so nothing in the caller's tree influences the build.
    with tempfile.TemporaryDirectory() as neutral:
        _run([*command, f"{package}@{version}"], env=env, cwd=Path(neutral))


def _download(url: str, dest: Path) -> None:
    log(f"downloading {url}")
    with urllib.request.urlopen(url, timeout=120) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out)


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _temporal_on_path() -> Path | None:
    found = shutil.which("temporal")
    if found is None:
        return None
    try:
        output = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"temporal version (\d+\.\d+\.\d+)", output)
    if match and _version_tuple(match.group(1)) >= _version_tuple(TEMPORAL_CLI_VERSION):
        return Path(found)
    return None


def _cached_or_built(
    name: str,
    slug: str,
    version: str,
    label: str,
    build: Callable[[Path], None],
    *,
    install: bool,
    verb: str = "built",
) -> Tool:
    """The tool ``name`` (also its executable's name) from its directory in the cache, ``slug-version``, else
    made there by ``build`` in a scratch directory that becomes the tool's directory only if the build succeeds;
    one process at a time (the lock is named ``slug``). ``label`` names the tool in messages."""
    final_dir = tools_dir() / f"{slug}-{version}"
    binary = final_dir / name
    if binary.exists():
        return Tool(name, binary, "cached")
    if not install:
        raise ToolError(f"{label} {version} is not installed in {final_dir}")
    with _exclusive(slug):
        if binary.exists():
            return Tool(name, binary, "cached")
        started = time.monotonic()
        with _staging(final_dir) as scratch:
            build(scratch)
        return Tool(name, binary, f"{verb} in {time.monotonic() - started:.0f} s")


def temporal_cli(*, install: bool = True) -> Tool:
    """The Temporal CLI, whose ``server start-dev`` is the dev server with the Web UI built in."""
    on_path = _temporal_on_path()
    if on_path is not None:
        return Tool("temporal", on_path, "on PATH")

    def build(scratch: Path) -> None:
        if shutil.which("go"):
            _go_install(
                "github.com/temporalio/cli/cmd/temporal",
                f"v{TEMPORAL_CLI_VERSION}",
                scratch,
                ldflags=f"-s -w -X github.com/temporalio/cli/temporalcli.Version={TEMPORAL_CLI_VERSION}",
            )
        else:
            # No Go: the official release archive, the same one the Temporal SDK downloads itself.
            archive = scratch / "temporal.tar.gz"
            _download(
                f"https://temporal.download/cli/archive/v{TEMPORAL_CLI_VERSION}"
                f"?platform={platform.system().lower()}&arch={_go_arch()}",
                archive,
            )
            with tarfile.open(archive) as tar:
                tar.extract("temporal", scratch, filter="data")
            archive.unlink()
        (scratch / "temporal").chmod(0o755)

    return _cached_or_built(
        "temporal", "temporal-cli", TEMPORAL_CLI_VERSION, "Temporal CLI", build, install=install
    )


def minio_server(*, install: bool = True) -> Tool:
    def build(scratch: Path) -> None:
        if shutil.which("go"):
            _go_install("github.com/minio/minio", MINIO_MODULE_VERSION, scratch)
        else:
            _download(f"https://dl.min.io/server/minio/release/linux-{_go_arch()}/minio", scratch / "minio")
            (scratch / "minio").chmod(0o755)

    return _cached_or_built("minio", "minio", MINIO_MODULE_VERSION, "MinIO", build, install=install)


def temporal_test_server(*, install: bool = True) -> Tool:
    """The Java time-skipping test server, behind a wrapper that takes ``<port>`` as the SDK passes it."""

    def build(scratch: Path) -> None:
        for needed in ("java", "mvn"):
            if shutil.which(needed) is None:
                raise ToolError(
                    f"{needed} is needed to fetch the Temporal test server from Maven Central; install a JDK 11+ and Maven"
                )
        pom = scratch / "pom.xml"
        pom.write_text(_TEST_SERVER_POM.read_text().replace("@VERSION@", TEMPORAL_TEST_SERVER_VERSION))
        _run(
            [
                "mvn", "-q", "-B", "-f", str(pom),
                "dependency:copy-dependencies", f"-DoutputDirectory={scratch / 'lib'}", "-DincludeScope=runtime",
            ]
        )  # fmt: skip
        pom.unlink()
        # `exec` matters: the SDK stops the server with SIGKILL, which must reach the JVM, not the shell.
        (scratch / "temporal-test-server").write_text(
            "#!/bin/sh\n"
            "# Started by temporalio's WorkflowEnvironment.start_time_skipping as: <this> <port>\n"
            'DIR="$(cd "$(dirname "$0")" && pwd)"\n'
            "exec java ${TEMPORAL_TEST_SERVER_JAVA_OPTS:--XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xss512k} \\\n"
            '    -cp "$DIR/lib/*" io.temporal.testserver.TestServer "$@"\n'
        )
        (scratch / "temporal-test-server").chmod(0o755)

    return _cached_or_built(
        "temporal-test-server",
        "temporal-test-server",
        TEMPORAL_TEST_SERVER_VERSION,
        "temporal-test-server",
        build,
        install=install,
        verb="fetched",
    )


def temporal_server(*, install: bool = True) -> Tool:
    """The production Temporal server (``temporal-server``) and, in the same directory, its schema tool
    (``temporal-sql-tool``), built together from the module proxy (``go install``).

    Go's module and build caches are Go's own per-user ones (``go env GOMODCACHE GOCACHE``), not the clone's: a
    second clone finds the binaries here and builds nothing, and a rebuild after the cache directory was deleted
    reuses the downloaded modules. Needs Go; the module's go.mod names the toolchain it wants, which Go fetches
    itself (GOTOOLCHAIN=auto)."""

    def build(scratch: Path) -> None:
        if shutil.which("go") is None:
            raise ToolError(
                f"Go is needed to build the Temporal server {TEMPORAL_SERVER_VERSION}: install Go 1.23+ "
                "(https://go.dev/dl), or run on the dev server (the default)"
            )
        module = "go.temporal.io/server"
        for package, name in (("cmd/server", "temporal-server"), ("cmd/tools/sql", "temporal-sql-tool")):
            _go_install(f"{module}/{package}", f"v{TEMPORAL_SERVER_VERSION}", scratch, ldflags="-s -w")
            (scratch / package.rsplit("/", 1)[-1]).rename(scratch / name)

    return _cached_or_built(
        "temporal-server",
        "temporal-server",
        TEMPORAL_SERVER_VERSION,
        "Temporal server",
        build,
        install=install,
    )


def temporal_sql_tool(*, install: bool = True) -> Path:
    """The schema tool built beside :func:`temporal_server`."""
    return temporal_server(install=install).path.with_name("temporal-sql-tool")


def _postgres_bindir() -> Path | None:
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).resolve().parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: _version_tuple(p.parent.parent.name)
    )
    return candidates[-1].parent if candidates else None


def postgres_server(*, install: bool = True) -> Tool:
    """PostgreSQL from the distribution's packages; only the test suite and benchmarks start one."""
    bindir = _postgres_bindir()
    if bindir is not None:
        return Tool("postgres", bindir, "installed")
    if not install:
        raise ToolError("PostgreSQL server binaries (postgres, initdb) are not installed")
    if shutil.which("apt-get") is None:
        raise ToolError(
            "PostgreSQL is not installed and apt-get is unavailable: install a PostgreSQL 12+ server"
        )
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    started = time.monotonic()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run([*sudo, "apt-get", "update", "-q"], env=env)
    _run(
        [*sudo, "apt-get", "install", "-y", "-q", "--no-install-recommends", POSTGRES_DEBIAN_PACKAGE], env=env
    )
    bindir = _postgres_bindir()
    if bindir is None:
        raise ToolError(
            "apt-get installed postgresql but no server binaries were found under /usr/lib/postgresql"
        )
    return Tool("postgres", bindir, f"installed by apt in {time.monotonic() - started:.0f} s")


PROVIDERS = {
    "temporal": temporal_cli,
    "temporal-server": temporal_server,
    "temporal-test-server": temporal_test_server,
    "minio": minio_server,
    "postgres": postgres_server,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only report; install nothing")
    parser.add_argument(
        "tools", nargs="*", metavar="TOOL", help=f"any of {', '.join(PROVIDERS)} (default: all)"
    )
    args = parser.parse_args(argv)
    unknown = set(args.tools) - set(PROVIDERS)
    if unknown:
        parser.error(f"unknown tool(s): {', '.join(sorted(unknown))}")
    names = args.tools or list(PROVIDERS)
    # The two Go builds download hundreds of modules each: overlapping them saves minutes on a cold machine.
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        futures = {name: pool.submit(PROVIDERS[name], install=not args.check) for name in names}
    missing = 0
    for name, future in futures.items():
        try:
            tool = future.result()
        except ToolError as error:
            missing += 1
            log(f"{name}: {error}")
            continue
        log(f"{tool.name:<22} {tool.how:<18} {tool.path}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
