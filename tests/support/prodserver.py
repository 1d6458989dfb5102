"""The production Temporal server for the real-server test tier (tests/prodserver) and anything else that needs
it: built once into the tool cache, run on the session's PostgreSQL server, every port a free one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from devstack.processes import free_port
from devstack.services import PostgresServer, TemporalServer, free_server_ports


@contextmanager
def temporal_server(postgres: PostgresServer, *, sink: TextIO, config_dir: Path) -> Iterator[TemporalServer]:
    """The server on ``postgres`` (databases ``temporal`` and ``temporal_visibility``), stopped on exit. It
    starts with no namespace: register one with :func:`chronogram.temporal.ensure_namespace`."""
    server = TemporalServer.start(
        sink=sink,
        postgres=postgres,
        config_dir=config_dir,
        port=free_port(),
        metrics_port=free_port(),
        other_ports=free_server_ports(),
        log_level="error",
    )
    try:
        yield server
    finally:
        server.process.stop()
