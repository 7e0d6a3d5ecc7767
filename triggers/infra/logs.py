"""The process's log setup: one root handler, the redaction filter, text or JSON lines.

``setup("json")`` writes one JSON object a line (README "Logs"): ``time``, ``level``,
``logger``, ``message``, and the fields a record carries among ``FIELDS`` (trigger id,
provider, event id and key, the run's workflow id, trace id...; set with ``extra=``, in
workflow code through ``workflow.logger``, which never logs again on replay), the Temporal
workflow or activity the record came from, and ``exception`` (a formatted traceback).
Only those fields are written: a record's other attributes (anything a library put in
``extra``) never reach the output. Text lines show the same fields after the message.

Every record passes ``RedactingFilter`` before it is formatted, and every field of a JSON
line goes through ``redact`` too, so held secrets are ``***`` in either format.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

from opentelemetry import trace
from temporalio import activity, workflow

from triggers.infra import redaction

# The fields a record may carry into its line, in the order they are written.
FIELDS = (
    "trigger_id",
    "provider",
    "event_id",
    "event_key",
    "run_workflow_id",
    "trace_id",
    "outcome",
    "result",
    "state",
    "previous_state",
    "events",
)
# Of the SDK's ``temporal_workflow`` / ``temporal_activity`` extras.
_TEMPORAL = {
    "temporal_workflow": ("workflow_id", "workflow_type", "run_id"),
    "temporal_activity": ("workflow_id", "activity_type", "activity_id"),
}
_MAX_FIELD_CHARS = 1024
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def _clean(value: Any) -> Any:
    if isinstance(value, bool | int | float) or value is None:
        return value
    return redaction.redact(str(value))[:_MAX_FIELD_CHARS]


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The known fields a record carries, its trace id from the current span when it was
    not given (a record logged inside a traced request or activity)."""
    out: dict[str, Any] = {}
    for name in FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            out[name] = _clean(value)
    for extra, names in _TEMPORAL.items():
        info = getattr(record, extra, None)
        if isinstance(info, dict):
            for name in names:
                key = "temporal_run_id" if name == "run_id" else name
                if info.get(name) is not None and key not in out:
                    out[key] = _clean(info[name])
    if "trace_id" not in out:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            out["trace_id"] = trace.format_trace_id(context.trace_id)
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object a line, fields from ``FIELDS`` only."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": _clean(record.getMessage()),
            **record_fields(record),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = redaction.redact(record.exc_text)
        if record.stack_info:
            line["stack"] = redaction.redact(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger message`` with the record's known fields after it."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = {k: v for k, v in record_fields(record).items() if k in FIELDS}
        if not fields:
            return text
        head, sep, rest = text.partition("\n")  # a traceback stays below the line
        suffix = " ".join(f"{k}={v}" for k, v in fields.items())
        return f"{head} [{suffix}]{sep}{rest}"


class _EvictionNoise(logging.Filter):
    """Drops OpenTelemetry's "Failed to detach context" when the span was left by a
    GeneratorExit: a workflow evicted from the worker's cache (at a stop, or to make room)
    is closed in another Context, where the SDK plugin's workflow spans cannot detach. It
    is harmless (the workflow is replayed from history where it runs next) and would
    otherwise log an ERROR with a traceback per span open (temporalio/sdk-python#441)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "opentelemetry.context" or not record.exc_info:
            return True
        error = record.exc_info[1]
        return not (error is not None and isinstance(error.__context__, GeneratorExit))


def source_state(
    log: logging.Logger, trigger_id: str, provider: str, state: str, previous: str
) -> None:
    """The record of a source's state change: WARNING when it is degraded or failed."""
    log.log(
        logging.WARNING if state in ("degraded", "failed") else logging.INFO,
        "source of trigger %s is %s",
        trigger_id,
        state,
        extra={
            "trigger_id": trigger_id,
            "provider": provider,
            "state": state,
            "previous_state": str(previous),
        },
    )


def setup(log_format: str = "text", *, stream: IO[str] | None = None) -> logging.Handler:
    """One handler on the root logger (replacing any), with the redaction filter: every
    record of the process (ours, the SDK's, uvicorn's) passes the one step that masks held
    secrets. Returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # The workflow / activity details are fields of their own in JSON: not in the message.
    json_lines = log_format == "json"
    workflow.logger.workflow_info_on_message = not json_lines
    activity.logger.activity_info_on_message = not json_lines
    handler.addFilter(_EvictionNoise())
    redaction.install(handler)
    return handler
