"""JSON structured logs (one object per line on stderr) carrying the current trace ids."""

from __future__ import annotations

import datetime as dt
import logging
import sys
import traceback
from typing import Any

import orjson
from opentelemetry import trace

# Attributes every LogRecord has; anything else on a record came from `extra=` and is emitted.
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: ts, level, service, logger, msg, trace_id, span_id,
    then any `extra=` fields, then `exc` with the traceback when there is one."""

    def __init__(self, service_name: str) -> None:
        super().__init__()
        self.service_name = service_name

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "service": self.service_name,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        # Ids stamped on the record win (e.g. the per-RPC line); else the current span's.
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            doc["trace_id"] = format(span_context.trace_id, "032x")
            doc["span_id"] = format(span_context.span_id, "016x")
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = "".join(traceback.format_exception(*record.exc_info))
        elif record.stack_info:
            doc["stack"] = record.stack_info
        return orjson.dumps(doc, default=str).decode()


class _RuntimeHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler this module installed, so reconfiguring replaces it. Writes to the
    current sys.stderr (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(service_name: str, level: str = "INFO") -> None:
    """Send JSON lines to stderr from the root logger at `level`. Safe to call again."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _RuntimeHandler):
            root.removeHandler(handler)
    handler = _RuntimeHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service_name))
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)
