"""Traces leave a process over OTLP/HTTP exactly when OTEL_EXPORTER_OTLP_ENDPOINT says where: a process configured
like the API and the worker, run with and without it, against a local receiver."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chronogram.settings import PROJECT_ROOT

_PROCESS = """
from opentelemetry import trace
from chronogram.observability.tracing import configure_tracing
provider = configure_tracing("chronogram-probe")
with trace.get_tracer("probe").start_as_current_span("probe-span"):
    pass
if provider is not None:
    provider.shutdown()  # flushes the batch
"""


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.received.append((self.path, self.headers.get("content-type", ""), body))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    received: list[tuple[str, str, bytes]] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def _run(**env: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    subprocess.run(
        [sys.executable, "-c", _PROCESS], env={**clean, **env}, cwd=PROJECT_ROOT, check=True, timeout=60
    )


def test_spans_are_exported_over_otlp_when_an_endpoint_is_set(
    receiver: tuple[str, list[tuple[str, str, bytes]]],
) -> None:
    url, received = receiver
    _run(OTEL_EXPORTER_OTLP_ENDPOINT=url, OTEL_SERVICE_NAME="probe-service")
    assert [(path, kind) for path, kind, _ in received] == [("/v1/traces", "application/x-protobuf")]
    body = received[0][2]
    assert b"probe-span" in body and b"probe-service" in body


def test_nothing_leaves_the_process_without_an_endpoint(
    receiver: tuple[str, list[tuple[str, str, bytes]]],
) -> None:
    _url, received = receiver
    _run(OTEL_SERVICE_NAME="probe-service")  # spans are made (log lines carry their ids), and dropped
    assert received == []
