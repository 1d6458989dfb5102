"""glibc's allocator, tuned for a Python process with many threads (the worker's activity pool, the API's thread
pool for database calls)."""

from __future__ import annotations

import ctypes
import os

_M_ARENA_MAX = -8  # from glibc's malloc.h


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives threads that allocate at once arenas of their own, up to eight per core, and memory freed in
    one stays resident there: after a burst on the hundred activity threads, an idle worker held 27 MiB more with
    the default than with two arenas, which cost the burst nothing measurable (bench/README.md). Call it before
    the process starts threads; MALLOC_ARENA_MAX, when set, wins."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc: its allocator has no arenas to limit
    libc.mallopt(_M_ARENA_MAX, arenas)
