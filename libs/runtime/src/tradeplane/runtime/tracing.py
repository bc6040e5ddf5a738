"""OpenTelemetry tracing set-up and W3C trace-context propagation through gRPC metadata."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, MutableSequence

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)

log = logging.getLogger(__name__)

TRACER_NAME = "tradeplane.runtime"

MetadataPairs = Iterable[tuple[str, str | bytes]]


class _MetadataGetter(Getter[MetadataPairs]):
    """Reads W3C headers (traceparent, tracestate, baggage) from gRPC invocation metadata."""

    def get(self, carrier: MetadataPairs, key: str) -> list[str] | None:
        values = [v.decode() if isinstance(v, bytes) else v for k, v in carrier if k.lower() == key]
        return values or None

    def keys(self, carrier: MetadataPairs) -> list[str]:
        return [k for k, _ in carrier]


class _MetadataSetter(Setter[MutableSequence[tuple[str, str]]]):
    def set(self, carrier: MutableSequence[tuple[str, str]], key: str, value: str) -> None:
        carrier.append((key.lower(), value))


METADATA_GETTER = _MetadataGetter()
METADATA_SETTER = _MetadataSetter()


def extract_context(metadata: MetadataPairs | None) -> Context:
    """The parent context a caller sent in its metadata (empty when none)."""
    return propagate.extract(list(metadata or ()), getter=METADATA_GETTER)


def inject_context(metadata: MutableSequence[tuple[str, str]]) -> None:
    """Append the current trace context to outgoing metadata."""
    propagate.inject(metadata, setter=METADATA_SETTER)


def current_trace_id() -> str | None:
    """The current trace id as 32 hex digits, or None outside a trace."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def _exporter_from_env() -> tuple[SpanExporter | None, bool]:
    """(exporter, batch?) chosen by OTEL_TRACES_EXPORTER: otlp | console | none (default)."""
    choice = os.environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower()
    if choice in ("", "none"):
        return None, False
    if choice == "console":
        return ConsoleSpanExporter(), False
    if choice == "otlp":
        # Reads OTEL_EXPORTER_OTLP_ENDPOINT / _HEADERS / ... itself.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(), True
    raise ValueError(f"OTEL_TRACES_EXPORTER={choice!r} is not one of otlp, console, none")


def configure_tracing(service_name: str) -> None:
    """Install the global tracer provider once. Without an exporter spans are still created, so
    trace ids reach logs and error messages and are propagated to other services."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return  # already configured in this process
    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", service_name)})
    provider = TracerProvider(resource=resource)
    exporter, batch = _exporter_from_env()
    if exporter is not None:
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    log.debug("tracing configured", extra={"exporter": type(exporter).__name__})
