"""Metrics, logs and traces for operators (docs/operations.md): set up once per process, from the Settings and the
standard OTEL_* variables. Imports nothing of the processes around the core (api/, worker, workflows/,
activities/), which call ``setup_process`` and pass the hooks on to the clients they build."""

from __future__ import annotations

from chronogram.observability.logs import configure_logging, log_outcome
from chronogram.observability.metrics import install_transition_metrics
from chronogram.observability.tracing import configure_tracing
from chronogram.settings import Settings

__all__ = ["setup_process", "setup_telemetry"]


def setup_telemetry(service_name: str) -> None:
    """Traces, and the post transitions counted and their outcomes logged: what a process running posts needs,
    without touching its logging (tests run several such processes' parts in one)."""
    configure_tracing(service_name)
    install_transition_metrics(log_outcome)


def setup_process(settings: Settings, service_name: str) -> None:
    """All of it, the process's log handler included (the entry points: worker.py, the API)."""
    configure_logging(settings)
    setup_telemetry(service_name)
