"""What the trigger workflow counts, through ``workflow.metric_meter()``.

Replay-safe: the SDK records nothing while a workflow replays its history (a new worker, a
sticky-cache eviction), so each count happens once per event however often the history is
replayed. Metrics are not commands: adding or changing one needs no ``workflow.patched``.
Every record carries ``trigger_id``; the process's registry keeps it only when per-trigger
labels are on. Deterministic, no I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from triggers.contracts.metrics import (
        DUPLICATES,
        EVENTS_FILTERED,
        LATENCY,
        PROVIDER,
        RESULT,
        RUNS_STARTED,
        STAGE,
        START_FAILURES,
        TRIGGER,
    )


def _labels(provider: str, trigger_id: str) -> dict[str, str | int | float | bool]:
    return {PROVIDER: provider, TRIGGER: trigger_id}


def filtered(provider: str, trigger_id: str, result: str) -> None:
    """One condition outcome (``passed``, ``dropped``, ``error``)."""
    workflow.metric_meter().create_counter(EVENTS_FILTERED, "Condition outcomes").add(
        1, {**_labels(provider, trigger_id), RESULT: result}
    )


def duplicate(provider: str, trigger_id: str, stage: str) -> None:
    workflow.metric_meter().create_counter(DUPLICATES, "Duplicate events dropped").add(
        1, {**_labels(provider, trigger_id), STAGE: stage}
    )


def start_failed(provider: str, trigger_id: str) -> None:
    workflow.metric_meter().create_counter(START_FAILURES, "Run starts that failed").add(
        1, _labels(provider, trigger_id)
    )


def run_started(provider: str, trigger_id: str, event_time: str) -> None:
    """A run actually started (not a duplicate), and how long after its event: from the
    event's ``time`` (the source's own time where the provider has one, else when it was
    received) to now, the workflow task that saw the start succeed."""
    labels = _labels(provider, trigger_id)
    meter = workflow.metric_meter()
    meter.create_counter(RUNS_STARTED, "Runs started by triggers").add(1, labels)
    latency = _seconds_since(event_time)
    if latency is not None:
        meter.create_histogram_float(LATENCY, "Event to run start", "s").record(latency, labels)


def _seconds_since(event_time: str) -> float | None:
    """Seconds from ``event_time`` (ISO 8601; naive means UTC) to the workflow's now, at
    least 0 (a sender's clock may run ahead); None when it is no time. Never raises: a
    plain exception in workflow code would retry the task forever."""
    try:
        at = datetime.fromisoformat(event_time)
    except (TypeError, ValueError):
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return max((workflow.now() - at).total_seconds(), 0.0)
