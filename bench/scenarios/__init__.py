"""One module per scenario, each with ``NAME`` and ``async def run(bench) -> dict``: its figures, the path used
(``api``), and ``goals``: [{goal, measured, met}]."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

from bench.scenarios import (
    burst,
    chaos,
    idle,
    insights,
    media,
    punctuality,
    scaleout,
    scheduling,
    templates,
    uploads,
)

# In this order: the scheduling scenario's posts (a day ahead) count towards idle's 10,000, and the idle worker
# is measured after it has done the day's work (punctuality, burst), as a long-running worker would have. Chaos
# kills and restarts the stack's processes: last.
SCENARIOS: dict[str, ModuleType] = {
    module.NAME: module
    for module in (scheduling, punctuality, burst, idle, media, uploads, templates, insights, chaos, scaleout)
}
# A run without --only: scaleout needs a stack of its own (two workers, two APIs, PostgreSQL) and kills a worker.
DEFAULT_SCENARIOS = tuple(name for name in SCENARIOS if name != scaleout.NAME)

Runner = Callable[[Any], Awaitable[dict[str, Any]]]
