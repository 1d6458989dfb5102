"""Child processes that cannot outlive their parent, with prefixed logs and a clean, bounded stop."""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import signal
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

_PR_SET_PDEATHSIG = 1


class LineSink(Protocol):
    """Where a child's output goes: a file, or the terminal through a lock."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


class ProcessFailed(RuntimeError):
    """A child exited early or never became ready; the message carries the end of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _child_setup(run_as: str | None) -> Callable[[], None]:
    account = pwd.getpwnam(run_as) if run_as else None

    def setup() -> None:
        if account is not None:
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)
        # After any setuid, which clears it: if our process dies, even by SIGKILL, the kernel kills the child,
        # so a crashed test run or dev runner never leaves servers holding ports.
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return setup


class ManagedProcess:
    """One child process; every line it prints goes to ``sink`` prefixed with its name."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        sink: LineSink,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        run_as: str | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        prefix: str | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self._sink = sink
        self._env = env
        self._cwd = cwd
        self._run_as = run_as
        self._stop_signal = stop_signal
        self._prefix = prefix if prefix is not None else f"[{name}] "
        self._recent: deque[str] = deque(maxlen=60)
        self._process: subprocess.Popen[str] | None = None
        self._pump: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None, "not started"
        return self._process.pid

    def start(self) -> ManagedProcess:
        self._process = subprocess.Popen(
            self.argv,
            env=self._env,
            cwd=self._cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # Ctrl-C in the terminal reaches only us; we stop children in order
            preexec_fn=_child_setup(self._run_as),  # runs before exec, in the child only
        )
        self._pump = threading.Thread(target=self._copy_output, name=f"log-{self.name}", daemon=True)
        self._pump.start()
        return self

    def _copy_output(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            self._recent.append(line.rstrip("\n"))
            with contextlib.suppress(ValueError):  # the sink was closed during shutdown
                self._sink.write(f"{self._prefix}{line}")
                self._sink.flush()

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def recent_output(self) -> str:
        return "\n".join(self._recent)

    def wait_until_ready(self, check: Callable[[], bool], *, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_running():
                raise ProcessFailed(f"{self.name} exited before {what}:\n{self.recent_output()}")
            with contextlib.suppress(Exception):
                if check():
                    return
            time.sleep(0.1)
        raise ProcessFailed(
            f"{self.name} did not become ready ({what}) within {timeout:.0f} s:\n{self.recent_output()}"
        )

    def stop(self, timeout: float = 15.0) -> int | None:
        """Ask politely, then insist; returns the exit code."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, self._stop_signal)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        else:
            # The leader is gone; make sure nothing it forked lingers in its group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        if self._pump is not None:
            self._pump.join(timeout=2)
        return process.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash would: for tests of crash safety."""
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
