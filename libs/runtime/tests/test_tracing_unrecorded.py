"""Without an exporter (OTEL_TRACES_EXPORTER=none) spans do not record, yet each still has
the ids and the sampled flag the SDK would have given it, so trace ids reach logs and
decision records and the context propagates unchanged; once a span processor is attached
(an exporter, a test's in-memory one) spans record again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    DEFAULT_OFF,
    DEFAULT_ON,
    ParentBasedTraceIdRatio,
    Sampler,
    TraceIdRatioBased,
)

from tradeplane.runtime import tracing

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"


class _FixedIds(IdGenerator):
    """The same id sequence for two providers, so their samplers see the same trace ids."""

    def __init__(self) -> None:
        self._spans = self._traces = 0x1234

    def generate_span_id(self) -> int:
        self._spans += 1
        return self._spans

    def generate_trace_id(self) -> int:
        self._traces += 1
        # The low 64 bits (what a ratio sampler reads) alternately low and high: a 0.5 ratio
        # sampler keeps every other one.
        low = 0xFFFF_FFFF_FFFF_0000 if self._traces % 2 else self._traces
        return (self._traces << 64) | low


PARENTS = {
    "root": None,
    "remote sampled": f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01",
    "remote unsampled": f"00-{TRACE_ID}-{PARENT_SPAN_ID}-00",
}
SAMPLERS: dict[str, Sampler] = {
    "default": DEFAULT_ON,
    "parentbased_always_off": DEFAULT_OFF,
    "always_on": ALWAYS_ON,
    "always_off": ALWAYS_OFF,
    "ratio": TraceIdRatioBased(0.5),
    "parentbased_ratio": ParentBasedTraceIdRatio(0.5),
}


@pytest.mark.parametrize("parent", PARENTS.values(), ids=PARENTS.keys())
@pytest.mark.parametrize("sampler", SAMPLERS.values(), ids=SAMPLERS.keys())
def test_an_unrecorded_span_has_the_context_the_sdk_gives(
    sampler: Sampler, parent: str | None
) -> None:
    headers = {"traceparent": parent, "tracestate": "vendor=value"} if parent else {}
    context = tracing.context_from(headers)
    unobserved = tracing._UnobservedTracerProvider(sampler=sampler, id_generator=_FixedIds())
    sdk = TracerProvider(sampler=sampler, id_generator=_FixedIds())
    sampled = set()
    for _ in range(6):  # several root trace ids for the ratio samplers
        got = unobserved.get_tracer("t").start_span("work", context, attributes={"a": 1})
        want = sdk.get_tracer("t").start_span("work", context, attributes={"a": 1})
        assert not got.is_recording()
        assert got.get_span_context() == want.get_span_context()
        assert got.get_span_context().trace_flags == want.get_span_context().trace_flags
        assert got.get_span_context().trace_state == want.get_span_context().trace_state
        sampled.add(got.get_span_context().trace_flags.sampled)
        want.end()
        got.end()
    if parent is None and isinstance(sampler, TraceIdRatioBased | ParentBasedTraceIdRatio):
        assert sampled == {True, False}
    sdk.shutdown()
    unobserved.shutdown()


def test_a_span_processor_makes_spans_record() -> None:
    provider = tracing._UnobservedTracerProvider()
    tracer = provider.get_tracer("t")  # handed out before the processor came
    with tracer.start_as_current_span("before") as before:
        assert not before.is_recording()
        assert before.get_span_context().is_valid
        with tracer.start_as_current_span("child") as child:
            assert child.get_span_context().trace_id == before.get_span_context().trace_id
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with tracer.start_as_current_span("after", attributes={"venue": "PAPER"}) as after:
        assert after.is_recording()
    span = tracer.start_span("started")
    span.end()
    assert [s.name for s in exporter.get_finished_spans()] == ["after", "started"]
    assert exporter.get_finished_spans()[0].attributes == {"venue": "PAPER"}
    provider.shutdown()


SCRIPT = textwrap.dedent(
    """
    import asyncio
    import json
    import sys
    from opentelemetry import trace
    from sqlalchemy import text
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from tradeplane.runtime import tracing
    from tradeplane.runtime.db import create_engine

    tracing.configure_tracing("unrecorded-test")
    engine = create_engine(f"sqlite:///{sys.argv[1]}")  # instrumented while unobserved

    async def query(n):
        async with engine.connect() as conn:
            return (await conn.execute(text(f"SELECT {n}"))).scalar()
    incoming = tracing.extract_context([("traceparent", "00-%s-%s-01")])
    out = {}
    with tracing.span("server", parent=incoming, kind=tracing.SpanKind.SERVER) as server:
        with tracing.span("venue.submit", venue="PAPER") as inner:
            out["recording"] = [server.is_recording(), inner.is_recording()]
            out["trace_id"] = tracing.current_trace_id()
            out["carrier"] = tracing.carrier()
            out["span_id"] = format(inner.get_span_context().span_id, "016x")
            metadata = []
            tracing.inject_context(metadata)
            out["metadata"] = metadata
            out["unobserved_query"] = asyncio.run(query(1))
    with tracing.span("root") as root:
        out["root"] = [root.is_recording(), tracing.current_trace_id(), tracing.carrier()]
    out["after"] = tracing.current_trace_id()
    exporter = InMemorySpanExporter()
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
    with tracing.span("observed", parent=incoming) as observed:
        out["observed"] = observed.is_recording()
        out["observed_query"] = asyncio.run(query(2))
    asyncio.run(engine.dispose())
    out["exported"] = [
        (s.kind.name, (s.attributes or {}).get("db.statement", s.name))
        for s in exporter.get_finished_spans()
    ]
    print(json.dumps(out))
    """
)


def test_without_an_exporter_spans_do_not_record_but_the_trace_goes_on(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_TRACES_EXPORTER"] = "none"
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT % (TRACE_ID, PARENT_SPAN_ID), str(tmp_path / "t.db")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = json.loads(run.stdout)
    assert out["recording"] == [False, False]
    assert out["trace_id"] == TRACE_ID  # the caller's trace, for logs and decision records
    traceparent = f"00-{TRACE_ID}-{out['span_id']}-01"  # continued, still sampled
    assert out["span_id"] != PARENT_SPAN_ID
    assert out["carrier"] == {"traceparent": traceparent}
    assert out["metadata"] == [["traceparent", traceparent]]
    recording, root_trace_id, root_carrier = out["root"]
    assert not recording
    assert root_trace_id not in (None, TRACE_ID)  # a new trace
    assert root_carrier["traceparent"].startswith(f"00-{root_trace_id}-")
    assert int(root_carrier["traceparent"][-2:], 16) & 1  # sampled (and a random trace id)
    assert out["after"] is None
    assert out["unobserved_query"] == 1  # the engine's statements skip the span work
    assert out["observed"] is True
    assert out["observed_query"] == 2
    # Once observed, statements on the engine made before are spans again.
    assert out["exported"] == [["CLIENT", "SELECT 2"], ["INTERNAL", "observed"]]
