"""chronogram_graph_circuit_state follows the worker's breakers: 0 closed, 2 open, per host."""

from __future__ import annotations

from prometheus_client import REGISTRY

from chronogram.instagram.breaker import BreakerConfig, BreakerRegistry
from chronogram.instagram.errors import Operation
from chronogram.observability.metrics import refresh_circuit_gauges


def _state(host: str) -> float | None:
    return REGISTRY.get_sample_value("chronogram_graph_circuit_state", {"host": host})


def test_the_gauge_reads_each_host_breaker() -> None:
    registry = BreakerRegistry(BreakerConfig(failure_threshold=2))
    healthy, failing = "graph.healthy.test:443", "graph.failing.test:443"
    registry.for_host(healthy).admit(Operation.GET_MEDIA).succeeded()
    for _ in range(2):
        registry.for_host(failing).admit(Operation.GET_MEDIA).failed("HTTP 500 (#2)")
    refresh_circuit_gauges(registry)
    assert (_state(healthy), _state(failing)) == (0, 2)
    refresh_circuit_gauges(None)  # the breakers turned off: nothing to say, nothing raised
