"""The worker and the API limit glibc to two malloc arenas: threads alive at once no longer each get their own,
and an operator's MALLOC_ARENA_MAX still wins. Counted from glibc's own report (malloc_info), in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]

_PROBE = """
import ctypes, sys, tempfile, threading
from chronogram.malloc import limit_malloc_arenas
if sys.argv[1] == "limit":
    limit_malloc_arenas()
barrier = threading.Barrier(8)
kept = []
def allocate():
    barrier.wait()  # all eight threads alive at once, as the worker's activity threads are in a burst
    kept.append([bytearray(4000) for _ in range(50)])  # above Python's small-object allocator: real mallocs
    barrier.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads: thread.start()
for thread in threads: thread.join()
libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile(suffix=".xml") as report:
    stream = libc.fopen(report.name.encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(stream))
    libc.fclose(ctypes.c_void_p(stream))
    print(open(report.name).read().count("<heap nr="))
"""


def _arenas(mode: str, **env: str) -> int:
    environment = {key: value for key, value in os.environ.items() if key != "MALLOC_ARENA_MAX"} | env
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return int(done.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_two_arenas_however_many_threads_allocate() -> None:
    assert (
        _arenas("default") > 2
    )  # the probe does make glibc add arenas, so the limit below is what holds them
    assert _arenas("limit") == 2
    assert _arenas("limit", MALLOC_ARENA_MAX="3") == 3
