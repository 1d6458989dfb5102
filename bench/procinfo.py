"""What a process costs, read from /proc (Linux only): no psutil, so the benchmark adds no dependency."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(f"{field} not in /proc/{pid}/status")


def rss_bytes(pid: int) -> int:
    """Resident set size now (anonymous + file-backed + shared memory)."""
    return _status_kib(pid, "VmRSS") * 1024


def peak_rss_bytes(pid: int) -> int:
    """The high-water mark of the resident set since start, or since :func:`reset_peak_rss`."""
    return _status_kib(pid, "VmHWM") * 1024


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (writing 5 to clear_refs, Linux >= 4.0), so that the peak of one
    operation can be read afterwards. False where the kernel or permissions do not allow it."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of all the process's threads so far."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces and parentheses: split after its closing parenthesis.
    fields = raw[raw.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLOCK_TICKS


def tree_cpu_seconds(pid: int) -> float:
    """CPU of the process and its direct children, live or exited: PostgreSQL's work happens in the postmaster's
    backends, which come and go with the client's connections."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    own = raw[raw.rindex(")") + 2 :].split()
    # utime, stime, and cutime, cstime: what the children that already exited (and were waited for) used.
    total = sum(int(value) for value in own[11:15]) / _CLOCK_TICKS
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == pid:
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return total


def thread_count(pid: int) -> int:
    return _status_kib(pid, "Threads")


@dataclass(frozen=True)
class ProcessSample:
    rss_bytes: int
    cpu_seconds: float


def sample(pid: int) -> ProcessSample:
    return ProcessSample(rss_bytes=rss_bytes(pid), cpu_seconds=cpu_seconds(pid))


def file_size(path: Path) -> int:
    """Size of a SQLite database as it sits on disk: the file and its write-ahead log."""
    total = 0
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if candidate.exists():
            total += candidate.stat().st_size
    return total


def mib(value: float) -> float:
    return round(value / (1024 * 1024), 1)


@dataclass(frozen=True)
class CpuReading:
    wall_s: float
    cpu_s: dict[str, float]

    def cores(self) -> dict[str, float]:
        """The share of one core each process used: 1.0 is a core fully busy for the whole interval."""
        return {
            name: round(seconds / self.wall_s, 3) if self.wall_s > 0 else 0.0
            for name, seconds in self.cpu_s.items()
        }

    def to_json(self) -> dict[str, object]:
        return {"wall_s": round(self.wall_s, 2), "cpu_s": self.cpu_s, "cores": self.cores()}


class CpuMeter:
    """CPU seconds each process (and this one, as "bench") spent between construction and :meth:`read`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = {**pids, "bench": os.getpid()}
        self._began = time.monotonic()
        self._start = {name: _cpu_or_zero(name, pid) for name, pid in self._pids.items()}

    def read(self) -> CpuReading:
        spent = {
            name: round(_cpu_or_zero(name, pid) - self._start[name], 2) for name, pid in self._pids.items()
        }
        return CpuReading(wall_s=time.monotonic() - self._began, cpu_s=spent)


def _cpu_or_zero(name: str, pid: int) -> float:
    try:
        # PostgreSQL works in the postmaster's child processes; every other server is one process. (The
        # benchmark's own children are the stack: counting its tree would count everything twice.)
        return tree_cpu_seconds(pid) if name == "postgres" else cpu_seconds(pid)
    except (OSError, ValueError):
        return 0.0


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used since boot (from /proc/stat, every core)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


class MachineMeter:
    """How busy the whole machine was while a scenario ran, and how much of that was not the benchmark's stack:
    the machine may be shared, and a neighbour's load shows in the figures."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._ours = CpuMeter(pids)
        self._began = time.monotonic()
        self._busy = machine_busy_seconds()

    def read(self) -> dict[str, float]:
        wall = time.monotonic() - self._began
        busy = machine_busy_seconds() - self._busy
        ours = sum(self._ours.read().cpu_s.values())
        return {
            "wall_s": round(wall, 1),
            "busy_cores": round(busy / wall, 2) if wall > 0 else 0.0,
            "stack_cores": round(ours / wall, 2) if wall > 0 else 0.0,
            "other_cores": round(max(0.0, busy - ours) / wall, 2) if wall > 0 else 0.0,
        }
