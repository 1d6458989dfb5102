"""Spans that nothing receives are dropped at birth but keep their trace (chronogram.observability.tracing)."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from chronogram.observability.tracing import SampledWhenReceived


def test_a_span_nothing_receives_is_not_recorded_but_carries_its_trace_to_its_children() -> None:
    provider = TracerProvider(sampler=SampledWhenReceived(ALWAYS_ON))
    tracer = provider.get_tracer("probe")
    with (
        tracer.start_as_current_span("activity") as outer,
        tracer.start_as_current_span("graph call") as inner,
    ):
        assert not outer.is_recording() and not inner.is_recording()
        assert outer.get_span_context().is_valid and inner.get_span_context().is_valid
        assert inner.get_span_context().trace_id == outer.get_span_context().trace_id
        assert inner.get_span_context().span_id != outer.get_span_context().span_id


def test_spans_are_recorded_as_the_inner_sampler_says_once_something_receives_them() -> None:
    sampler = SampledWhenReceived(ALWAYS_ON)
    provider = TracerProvider(sampler=sampler)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("probe")
    with tracer.start_as_current_span("before"):
        pass
    sampler.receiving = True
    with tracer.start_as_current_span("after") as span:
        assert span.is_recording()
    assert [span.name for span in exporter.get_finished_spans()] == ["after"]
    assert sampler.get_description() == "SampledWhenReceived{AlwaysOnSampler}"
