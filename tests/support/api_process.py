"""The API as production runs it: ``uvicorn api.main:app`` in a process of its own, on a real socket, configured
only through CHRONOGRAM_* variables. For tests of what only a real server shows: slow clients, many connections,
disconnects."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from pydantic import SecretStr

from chronogram.settings import PROJECT_ROOT, Settings
from devstack.processes import ManagedProcess, free_port
from devstack.services import LOCALHOST


def settings_env(settings: Settings) -> dict[str, str]:
    """Every setting as the CHRONOGRAM_* variable that would give it, secrets included."""
    dumped = settings.model_dump(mode="json")
    env: dict[str, str] = {}
    for name, value in dumped.items():
        actual = getattr(settings, name)
        if isinstance(actual, SecretStr):
            value = actual.get_secret_value()
        if value is None:
            continue
        env[f"CHRONOGRAM_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env


@contextmanager
def api_process(settings: Settings, *, sink: TextIO) -> Iterator[str]:
    """Start the API with ``settings`` (its host and port replaced by free ones); yields its base URL once
    /readyz answers, and stops it on exit."""
    port = free_port()
    configured = settings.model_copy(update={"api_host": LOCALHOST, "api_port": port})
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHRONOGRAM_")}
    env.update(settings_env(configured))
    argv = [
        sys.executable, "-m", "uvicorn", "api.main:app", "--host", LOCALHOST, "--port", str(port),
        "--no-access-log", "--log-level", "warning",
        # Longer than the test clients' keep-alive expiry (httpx: 5 s, uvicorn's default too), so a client never
        # sends on a connection in the instant the API closes it (see sandbox.runner.KEEP_ALIVE_SECONDS).
        "--timeout-keep-alive", "75",
    ]  # fmt: skip
    process = ManagedProcess("api", argv, sink=sink, env=env, cwd=PROJECT_ROOT).start()
    url = f"http://{LOCALHOST}:{port}"
    try:
        process.wait_until_ready(lambda: _ok(f"{url}/readyz"), timeout=90, what="/readyz")
        yield url
    finally:
        process.stop()


def _ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)
