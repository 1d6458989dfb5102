"""Production workers (``python worker.py``) as processes of their own, so that a test can kill one the way a
machine dies (SIGKILL) and start another."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TextIO

from chronogram.settings import PROJECT_ROOT
from devstack.processes import ManagedProcess


class Workers:
    """``env``: the CHRONOGRAM_* variables that configure every worker (and nothing else from this process's)."""

    def __init__(self, env: Mapping[str, str], sink: TextIO) -> None:
        self._env = {**env, "PATH": "/usr/bin:/bin"}
        self._sink = sink
        self.running: list[ManagedProcess] = []

    def start(self) -> ManagedProcess:
        process = ManagedProcess(
            f"worker-{len(self.running) + 1}",
            [sys.executable, "worker.py"],
            sink=self._sink,
            env=self._env,
            cwd=PROJECT_ROOT,
        ).start()
        self.running.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.running:
            process.stop()
