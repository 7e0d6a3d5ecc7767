"""Pure helpers of the trigger workflow: what an event's verdict counts, whether the server
would refuse a run's start, and how much the workflow carries when it continues as new.

Deterministic, no I/O: the trigger workflow imports this module through the sandbox.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from triggers.contracts.trigger import RecentEvent
    from triggers.core.conditions import ConditionOutcome, RunDecision
    from triggers.core.events import Event, Verdict

# Loading claim-checked data: a database read.
LOAD_TIMEOUT = timedelta(seconds=30)
# Temporal's limit on workflow ids, task queue and workflow type names (characters).
TEMPORAL_NAME_LIMIT = 1000
# A run's input above this (bytes of JSON) is not sent: the server's blob limit is 2 MiB.
MAX_RUN_INPUT_BYTES = 1536 * 1024
# The dry run's ``last`` data kept inline (bytes); larger data is kept by reference.
RECENT_EVENT_DATA_LIMIT = 16 * 1024


def json_size(value: Any) -> int:
    """Bytes of ``value``'s compact JSON (values that are not JSON count as too large)."""
    try:
        return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    except (TypeError, ValueError):
        return MAX_RUN_INPUT_BYTES + 1


def verdict_of(decision: RunDecision, *, counted: bool, config_version: int) -> Verdict:
    """The workflow's own decision (an event that arrived without a verdict) as a verdict."""
    outcome: ConditionOutcome = decision.outcome
    return Verdict(
        result=outcome.result,
        error=outcome.error,
        counted=counted,
        mapped=decision.mapped,
        input=decision.input,
        config_version=config_version,
    )


def start_refusal(*, run_id: str, workflow_type: str, task_queue: str, size: int) -> str | None:
    """Why the server would refuse to start this run, checked before the start command is
    sent: a refused command fails the workflow task itself, on every retry, which would
    stop the trigger. ``None`` when the start may be sent."""
    if len(run_id) > TEMPORAL_NAME_LIMIT:
        return f"run id is longer than {TEMPORAL_NAME_LIMIT} characters"
    if not workflow_type or len(workflow_type) > TEMPORAL_NAME_LIMIT:
        return f"workflow type must be 1 to {TEMPORAL_NAME_LIMIT} characters"
    if not task_queue or len(task_queue) > TEMPORAL_NAME_LIMIT:
        return f"task queue must be 1 to {TEMPORAL_NAME_LIMIT} characters"
    if task_queue.startswith("/_sys/"):
        return "task queue names starting with /_sys/ are reserved by Temporal"
    if not (task_queue.isprintable() and workflow_type.isprintable()):
        return "task queue and workflow type must be printable text"
    if size > MAX_RUN_INPUT_BYTES:
        return f"run input is {size} bytes, over the {MAX_RUN_INPUT_BYTES}-byte limit"
    return None


def recent_event(event: Event) -> RecentEvent:
    """An accepted event as the dry run's ``last`` keeps it: large data by reference only."""
    size = 0 if event.data_ref else json_size(event.data)
    cut = size > RECENT_EVENT_DATA_LIMIT
    kept = replace(
        event, data=None if cut else event.data, verdict=None, traceparent=None, trace_link=False
    )
    return RecentEvent(**vars(kept), data_truncated=cut, data_size=size)


def run_event(event: Event) -> Event:
    """The event as a run receives it: the intake's verdict and the trace context are the
    trigger's business (a run's trace context travels in its start's headers)."""
    if event.verdict is None and event.traceparent is None and not event.trace_link:
        return event
    return replace(event, verdict=None, traceparent=None, trace_link=False)


def split_carry(
    pending: list[Event], *, max_events: int, max_bytes: int
) -> tuple[list[Event], list[Event]]:
    """The oldest pending events that continue-as-new carries in its input (at most
    ``max_events`` and about ``max_bytes``), and the rest, which are spilled to the
    database so the next run's input stays small however large the backlog."""
    total = 0
    for i, event in enumerate(pending):
        total += json_size(event.data) + 512
        if i >= max_events or total > max_bytes:
            return pending[:i], pending[i:]
    return pending, []
