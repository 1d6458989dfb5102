"""One module per scenario, each with ``NAME`` and ``async def run(bench) -> dict``: its figures, the path used
(``api``), and ``goals``: [{goal, measured, met}]."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

from bench.scenarios import burst, chaos, idle, media, punctuality, scheduling, uploads

# In this order: the scheduling scenario's posts (a day ahead) count towards idle's 10,000, and the idle worker
# is measured after it has done the day's work (punctuality, burst), as a long-running worker would have. Chaos
# kills and restarts the stack's processes: last.
SCENARIOS: dict[str, ModuleType] = {
    module.NAME: module for module in (scheduling, punctuality, burst, idle, media, uploads, chaos)
}

Runner = Callable[[Any], Awaitable[dict[str, Any]]]
