"""``python -m sandbox``: the one command that starts the sandbox outside the test process."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from sandbox.config import DEMO_ACCESS_TOKEN, DEMO_IG_USER_ID


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(*args: str, log_level: str = "warning") -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", str(port), "--log-level", log_level, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/_sandbox/health", timeout=0.5).status_code == 200:
                return process, base
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError(f"sandbox did not start: {process.communicate()[0]}")


@pytest.fixture
def cli_sandbox() -> Iterator[tuple[subprocess.Popen[str], str]]:
    process, base = start("--quota", "7", "--image-processing-seconds", "0")
    yield process, base
    process.terminate()
    process.wait(timeout=10)


def test_cli_starts_with_the_demo_account(cli_sandbox: tuple[subprocess.Popen[str], str]) -> None:
    process, base = cli_sandbox
    me = httpx.get(
        f"{base}/v25.0/me", params={"fields": "user_id,username", "access_token": DEMO_ACCESS_TOKEN}
    )
    assert me.json() == {"user_id": DEMO_IG_USER_ID, "username": "chronogram_demo", "id": DEMO_IG_USER_ID}
    limit = httpx.get(
        f"{base}/v25.0/{DEMO_IG_USER_ID}/content_publishing_limit",
        params={"fields": "config", "access_token": DEMO_ACCESS_TOKEN},
    )
    assert limit.json()["data"][0]["config"]["quota_total"] == 7
    process.terminate()
    output = process.communicate(timeout=10)[0]
    assert f"access_token={DEMO_ACCESS_TOKEN}" in output
    assert f"http://127.0.0.1:{base.rsplit(':', 1)[1]}" in output


def test_cli_without_the_demo_account_and_with_access_logs() -> None:
    process, base = start("--no-demo-account", log_level="info")
    try:
        response = httpx.get(f"{base}/v25.0/me", params={"fields": "id", "access_token": DEMO_ACCESS_TOKEN})
        assert response.json()["error"]["code"] == 190
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0]
    # The access log shows the request line, query string included, but never a token.
    assert "GET /v25.0/me?fields=id&access_token=[redacted]" in output
    assert DEMO_ACCESS_TOKEN not in output
