"""OpenTelemetry tracing set-up and W3C trace-context propagation through gRPC metadata."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import (
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    MutableSequence,
    Sequence,
)
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, Tracer, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import DEFAULT_ON, Decision
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags
from opentelemetry.util.types import Attributes

log = logging.getLogger(__name__)

TRACER_NAME = "tradeplane.runtime"

# Re-exported: callers need no opentelemetry import of their own.
SpanKind = trace.SpanKind
TraceContext = Context

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


def inject_context(
    metadata: MutableSequence[tuple[str, str]], context: Context | None = None
) -> None:
    """Append the trace context (default: the current one) to outgoing metadata."""
    propagate.inject(metadata, context=context, setter=METADATA_SETTER)


def current_trace_id() -> str | None:
    """The current trace id as 32 hex digits, or None outside a trace."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


AttributeValue = str | bool | int | float

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from sqlalchemy.ext.asyncio import AsyncEngine

P = ParamSpec("P")
R = TypeVar("R")

_tracer = trace.get_tracer(TRACER_NAME)  # a proxy: follows the provider set later


def current_context() -> Context:
    """The active context, to hand to work that runs later elsewhere (a queue, a task)."""
    return otel_context.get_current()


def carrier() -> dict[str, str]:
    """The current trace context as W3C headers (traceparent, tracestate), e.g. to store with
    an outbox event so its consumer continues the trace; empty outside a trace."""
    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers


def context_from(headers: Mapping[str, str]) -> Context:
    return propagate.extract(dict(headers))


async def detached(work: Awaitable[R]) -> R:
    """Run `work` (as a task's coroutine) outside the trace that started the task: for shared,
    long-lived work (an upstream stream serving many requests) that belongs to no one request."""
    token = otel_context.attach(Context())
    try:
        return await work
    finally:
        otel_context.detach(token)


class _CurrentSpan:
    """`with`: starts a span, makes it current for the block and ends it after; an exception
    leaving the block is recorded on it and sets its status to ERROR. What the SDK's
    `start_as_current_span` does, minus its two generator context managers: this runs several
    times per request."""

    __slots__ = ("_args", "_name", "_span", "_token")

    def __init__(self, name: str, **args: Any) -> None:
        self._name = name
        self._args = args
        self._span: trace.Span = trace.INVALID_SPAN
        self._token: object = None

    def __enter__(self) -> trace.Span:
        self._span = _tracer.start_span(self._name, **self._args)
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        current = self._span
        try:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            # Exception only: GeneratorExit or a cancel is no error (as in the SDK).
            if isinstance(exc, Exception) and current.is_recording():
                current.record_exception(exc)
                current.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            current.end()


def span(
    name: str,
    *,
    parent: Context | None = None,
    links: Sequence[trace.Link] = (),
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
    **attributes: AttributeValue,
) -> AbstractContextManager[trace.Span]:
    """A span around a block: `with tracing.span("venue.submit", venue="PAPER"): ...`.
    `parent` defaults to the active context. Exceptions are recorded and re-raised."""
    return _CurrentSpan(name, context=parent, kind=kind, links=links, attributes=attributes)


def traced(
    name: str, *, kind: trace.SpanKind = trace.SpanKind.INTERNAL
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Decorator: the coroutine function runs inside a span called `name`."""

    def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with _CurrentSpan(name, kind=kind):
                return await fn(*args, **kwargs)

        return wrapper

    return decorate


@contextmanager
def continued_span(
    name: str,
    carriers: Iterable[Mapping[str, str]],
    *,
    kind: trace.SpanKind = trace.SpanKind.CONSUMER,
    **attributes: AttributeValue,
) -> Iterator[trace.Span]:
    """A span continuing work that other processes started (messages carrying W3C headers):
    its parent is the first carrier's context, and it links to every other distinct one (a
    batch of messages from several traces). Without any carrier it starts a new trace."""
    parents: list[trace.SpanContext] = []
    for headers in carriers:
        ctx = trace.get_current_span(context_from(headers)).get_span_context()
        if ctx.is_valid and ctx not in parents:
            parents.append(ctx)
    parent = trace.set_span_in_context(trace.NonRecordingSpan(parents[0])) if parents else None
    links = [trace.Link(ctx) for ctx in parents[1:]]
    with _CurrentSpan(
        name, context=parent, kind=kind, links=links, attributes=attributes
    ) as current:
        yield current


class _ChildOnlyTracer(trace.Tracer):
    """Starts spans only inside a trace. A library call outside any operation (a background
    poll loop: the outbox sequencer, candle flushes) would otherwise be a one-span trace,
    many per second, all noise."""

    def __init__(self, name: str) -> None:
        self._tracer = trace.get_tracer(name)  # a proxy: follows the provider set later

    def start_span(
        self, name: str, context: Context | None = None, *args: Any, **kwargs: Any
    ) -> trace.Span:
        if not trace.get_current_span(context).get_span_context().is_valid:
            return trace.INVALID_SPAN
        return self._tracer.start_span(name, context, *args, **kwargs)

    @contextmanager
    def start_as_current_span(  # type: ignore[override]
        self, name: str, context: Context | None = None, *args: Any, **kwargs: Any
    ) -> Iterator[trace.Span]:
        if not trace.get_current_span(context).get_span_context().is_valid:
            yield trace.INVALID_SPAN
            return
        with self._tracer.start_as_current_span(name, context, *args, **kwargs) as current:
            yield current


class _ChildOnlyProvider(trace.TracerProvider):
    def get_tracer(self, instrumenting_module_name: str, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _ChildOnlyTracer(instrumenting_module_name)


def instrument_engine(engine: AsyncEngine) -> None:
    """A CLIENT span per statement on `engine` (opentelemetry-instrumentation-sqlalchemy),
    parented by the active span (none outside a trace). Per engine: the instrumentor's global
    hook wraps sqlalchemy's create_engine, which runtime.db imported before it could run."""
    if _sdk_disabled():
        return
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import get_meter

    class StatementTracer(EngineTracer):
        """Skips the per-statement work (attributes from the URL and the cursor, the
        operation name, a span) while spans do not record: it costs tens of microseconds a
        statement, and an unrecorded statement span is never current outside this hook."""

        def _before_cur_exec(self, *args: Any) -> Any:
            if _unobserved():
                return args[2], args[3]  # the statement and parameters, unchanged
            return super()._before_cur_exec(*args)  # type: ignore[no-untyped-call]

    meter = get_meter("opentelemetry.instrumentation.sqlalchemy")
    StatementTracer(  # type: ignore[no-untyped-call]  # the package ships no annotations
        _ChildOnlyTracer("opentelemetry.instrumentation.sqlalchemy"),
        engine.sync_engine,
        meter.create_up_down_counter(
            "db.client.connections.usage", unit="connections", description="connections in use"
        ),
    )


def instrument_redis(client: Redis) -> None:
    """A CLIENT span per Redis command or pipeline on `client` (none outside a trace)."""
    if _sdk_disabled():
        return
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    RedisInstrumentor.instrument_client(client, tracer_provider=_ChildOnlyProvider())


def _unobserved() -> bool:
    """Whether spans do not record: our provider without a span processor yet."""
    provider = trace.get_tracer_provider()
    return isinstance(provider, _UnobservedTracerProvider) and not provider.observed


def _sdk_disabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def _exporters_from_env() -> list[tuple[SpanExporter, bool]]:
    """[(exporter, batch?)] chosen by OTEL_TRACES_EXPORTER, a comma-separated list of otlp,
    console, none (the default here: locally nobody collects spans)."""
    out: list[tuple[SpanExporter, bool]] = []
    raw = os.environ.get("OTEL_TRACES_EXPORTER", "none")
    for choice in (c.strip().lower() for c in raw.split(",")):
        if choice in ("", "none"):
            continue
        if choice == "console":
            out.append((ConsoleSpanExporter(), False))
        elif choice == "otlp":
            # Reads OTEL_EXPORTER_OTLP_ENDPOINT / _HEADERS / _TIMEOUT ... itself.
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            out.append((OTLPSpanExporter(), True))
        else:
            raise ValueError(
                f"OTEL_TRACES_EXPORTER={raw!r}: {choice!r} is not one of otlp, console, none"
            )
    return out


class _Tracer(trace.Tracer):
    """The SDK's tracer while its provider has a span processor; before that a span does not
    record (see `_UnobservedTracerProvider`)."""

    def __init__(self, sdk: Tracer, provider: _UnobservedTracerProvider) -> None:
        self._sdk = sdk
        self._provider = provider

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: trace.SpanKind = trace.SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[trace.Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        if self._provider.observed:
            return self._sdk.start_span(
                name,
                context,
                kind,
                attributes,
                links,
                start_time,
                record_exception,
                set_status_on_exception,
            )
        return self._provider.unrecorded(name, context, kind, attributes, links)

    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: Context | None = None,
        kind: trace.SpanKind = trace.SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[trace.Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> AbstractContextManager[trace.Span]:
        if self._provider.observed:
            return self._sdk.start_as_current_span(
                name,
                context,
                kind,
                attributes,
                links,
                start_time,
                record_exception,
                set_status_on_exception,
                end_on_exit,
            )
        return trace.use_span(
            self._provider.unrecorded(name, context, kind, attributes, links),
            end_on_exit=end_on_exit,
        )


class _UnobservedTracerProvider(TracerProvider):
    """The SDK's provider, except that until a span processor is added (an exporter, or a
    test's in-memory one) its spans are NonRecordingSpans: nobody could ever see what a
    recording span collects, and building one (attributes, events, the span object) is most
    of the cost of a span. An unrecorded span still gets its own span id, its parent's trace
    id (a new one for a root) and the sampled flag the SDK would have given it, so trace ids
    still reach logs, errors and decision records, and the context propagates unchanged to
    other services (which may export)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # The SDK's own span metrics (opt-in) count every span: then take the SDK's path.
        self.observed = (
            os.environ.get("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "").strip().lower() == "true"
        )
        # The default sampler (no OTEL_TRACES_SAMPLER): the parent's flag, a root is sampled.
        self._parent_or_on = self.sampler is DEFAULT_ON

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        super().add_span_processor(span_processor)
        self.observed = True

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        tracer = super().get_tracer(*args, **kwargs)
        return _Tracer(tracer, self) if isinstance(tracer, Tracer) else tracer

    def unrecorded(
        self,
        name: str,
        context: Context | None,
        kind: trace.SpanKind,
        attributes: Attributes,
        links: Sequence[trace.Link] | None,
    ) -> trace.Span:
        """What the SDK's Tracer.start_span makes for a span its sampler drops, but with the
        sampler's flags rather than always unsampled."""
        parent = trace.get_current_span(context).get_span_context()
        ids = self.id_generator
        if parent.is_valid:
            trace_id = parent.trace_id
            random_trace_id = parent.trace_flags.random_trace_id
        else:
            trace_id = ids.generate_trace_id()
            random_trace_id = ids.is_trace_id_random()
        if self._parent_or_on:  # what that sampler decides, without its SamplingResult
            sampled = parent.trace_flags.sampled if parent.is_valid else True
            trace_state = parent.trace_state if parent.is_valid else None
        else:
            result = self.sampler.should_sample(context, trace_id, name, kind, attributes, links)
            sampled = result.decision is Decision.RECORD_AND_SAMPLE
            trace_state = result.trace_state
        flags = TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT
        if random_trace_id:
            flags |= TraceFlags.RANDOM_TRACE_ID
        return NonRecordingSpan(
            SpanContext(
                trace_id,
                ids.generate_span_id(),
                is_remote=False,
                trace_flags=TraceFlags(flags),
                trace_state=trace_state,
            )
        )


def configure_tracing(service_name: str) -> None:
    """Install the global tracer provider once. Without an exporter spans are still created,
    non-recording (until a span processor is added), so trace ids reach logs and error messages
    and are propagated to other services. Sampling follows OTEL_TRACES_SAMPLER(_ARG) and
    batching OTEL_BSP_* (the SDK reads them)."""
    if _sdk_disabled():
        return
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return  # already configured in this process
    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", service_name)})
    provider = _UnobservedTracerProvider(resource=resource)
    exporters = _exporters_from_env()
    for exporter, batch in exporters:
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    log.debug("tracing configured", extra={"exporters": [type(e).__name__ for e, _ in exporters]})
