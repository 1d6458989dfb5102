"""OpenTelemetry traces, configured the standard way: from the OTEL_* environment variables.

Spans go out over OTLP (HTTP/protobuf) only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set; otherwise they are made (so that log lines carry a trace id) and
dropped. ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER`` and the exporter's own
variables (headers, timeout, protocol) are read by the SDK itself; ``OTEL_SDK_DISABLED=true`` turns it all off.

One trace runs from an API request (FastAPI's own OpenTelemetry support, ``api.telemetry``) through the workflow
start and signals and every activity (Temporal's TracingInterceptor, installed by
``chronogram.temporal.connect_temporal``) to each Graph API call (httpx instrumentation of the client that makes
them).
"""

from __future__ import annotations

import os
from typing import Any

import httpx
from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span

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
        if any(os.environ.get(name) for name in _ENDPOINT_VARIABLES):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


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
