"""OpenTelemetry traces, configured the standard way: from the OTEL_* environment variables.

Spans go out over OTLP (HTTP/protobuf) only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set, and are recorded only while something receives them (that
exporter, or a processor added in-process); otherwise each is dropped at birth, non-recording but with its trace's
ids, so that log lines still carry a trace id at a fraction of a recorded span's cost. ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER`` and the exporter's own
variables (headers, timeout, protocol) are read by the SDK itself; ``OTEL_SDK_DISABLED=true`` turns it all off.

One trace runs from an API request (FastAPI's own OpenTelemetry support, ``api.telemetry``) through the workflow
start and signals and every activity (Temporal's TracingInterceptor, installed by
``chronogram.temporal.connect_temporal``) to each Graph API call (httpx instrumentation of the client that makes
them).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import httpx
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, Sampler, SamplingResult
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from chronogram.observability.logs import redact

__all__ = ["configure_tracing", "instrument_http_client"]

_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def configure_tracing(service_name: str, *processors: SpanProcessor) -> TracerProvider | None:
    """The process's tracer provider (made once; later calls add ``processors`` to it). None when the SDK is
    disabled. ``service_name`` is the default for ``OTEL_SERVICE_NAME``."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        provider = current
    else:
        provider = TracerProvider(resource=_resource(service_name))
        # The sampler the OTEL_TRACES_SAMPLER variables chose, consulted only while spans are received.
        provider.sampler = SampledWhenReceived(provider.sampler)
        if any(os.environ.get(name) for name in _ENDPOINT_VARIABLES):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            _add_processor(provider, BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
    for processor in processors:
        _add_processor(provider, processor)
    return provider


def _add_processor(provider: TracerProvider, processor: SpanProcessor) -> None:
    provider.add_span_processor(processor)
    if isinstance(provider.sampler, SampledWhenReceived):
        provider.sampler.receiving = True


class SampledWhenReceived(Sampler):
    """Defers to ``inner`` once something receives spans (``receiving``); until then drops every span: it is
    made non-recording, with a trace id (its parent's, or a new one) and no attributes, events or timing, and
    nothing downstream records it either. A recorded span that no processor receives costs as much as an exported
    one, for nothing."""

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner
        self.receiving = False

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        sampler = self.inner if self.receiving else ALWAYS_OFF
        return sampler.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"SampledWhenReceived{{{self.inner.get_description()}}}"


def _resource(service_name: str) -> Resource:
    """The resource the OTEL_* variables describe, named ``service_name`` unless they name the service."""
    detected = Resource.create()
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        return detected.merge(Resource({SERVICE_NAME: service_name}))
    return detected


def instrument_http_client(client: httpx.AsyncClient) -> None:
    """A span per request this client sends (the Graph API calls), a child of the span current when it is
    sent (the activity's), with the W3C trace headers. URLs in spans carry no token: the Graph client sends it
    in a header, and the one call that must send it in the query has it masked here."""
    HTTPXClientInstrumentor.instrument_client(client, request_hook=_mask_secrets_in_url)


async def _mask_secrets_in_url(span: Span, request: Any) -> None:
    url = str(request.url)
    masked = redact(url)
    if masked != url and span.is_recording():
        for attribute in ("url.full", "http.url"):
            span.set_attribute(attribute, masked)
