"""JSON log lines carrying trace ids; one line per RPC."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from opentelemetry import trace

from tradeplane.runtime.logging import JsonFormatter, configure_logging
from tradeplane.runtime.tracing import configure_tracing
from trading.market.v1 import market_pb2


def _record(msg: str, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("tradeplane.test", logging.INFO, __file__, 1, msg, (), None)
    record.__dict__.update(extra)
    return record


def test_json_line_fields_and_extras() -> None:
    doc = json.loads(JsonFormatter("market").format(_record("hello %s", symbol="BTC-USD")))
    assert doc["msg"] == "hello %s"
    assert doc["level"] == "INFO"
    assert doc["service"] == "market"
    assert doc["logger"] == "tradeplane.test"
    assert doc["symbol"] == "BTC-USD"
    assert doc["ts"].endswith("+00:00")
    assert "trace_id" not in doc  # no span


def test_trace_ids_inside_a_span() -> None:
    configure_tracing("runtime-test")
    with trace.get_tracer("test").start_as_current_span("work") as span:
        doc = json.loads(JsonFormatter("market").format(_record("inside")))
    ctx = span.get_span_context()
    assert doc["trace_id"] == format(ctx.trace_id, "032x")
    assert doc["span_id"] == format(ctx.span_id, "016x")


def test_exception_goes_into_exc() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    doc = json.loads(JsonFormatter("market").format(record))
    assert "ValueError: boom" in doc["exc"]


def test_configure_logging_writes_json_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("market", "DEBUG")
    configure_logging("market", "INFO")  # again: still one handler
    logging.getLogger("tradeplane.test").info("ready", extra={"port": 50051})
    logging.getLogger("tradeplane.test").debug("hidden")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    assert [(d["msg"], d["port"]) for d in lines if d["logger"] == "tradeplane.test"] == [
        ("ready", 50051)
    ]


async def test_one_line_per_rpc_with_trace_id(
    start_service: Any, caplog: pytest.LogCaptureFixture
) -> None:
    svc = await start_service(auth_mode="disabled")
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with caplog.at_level(logging.INFO, logger="tradeplane.runtime.rpc"):
        await svc.market().ListProducts(
            market_pb2.ListProductsRequest(), metadata=(("traceparent", traceparent),)
        )
    [record] = [r for r in caplog.records if r.name == "tradeplane.runtime.rpc"]
    doc = json.loads(JsonFormatter("runtime-test").format(record))
    assert doc["grpc_service"] == "trading.market.v1.MarketService"
    assert doc["grpc_method"] == "ListProducts"
    assert doc["grpc_type"] == "unary"
    assert doc["code"] == "OK"
    assert doc["duration_ms"] >= 0
    assert doc["peer"].startswith("ipv4:127.0.0.1:")
    assert doc["principal"] == "anonymous"
    # Formatted after the call: the ids were stamped on the record during it.
    assert doc["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert len(doc["span_id"]) == 16 and doc["span_id"] != "00f067aa0ba902b7"
