"""Dataclasses that cross the Temporal boundary: one in, one out, for every message."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from temporalio.common import SearchAttributeKey

from triggers.events import Event
from triggers.graph_steps import NodeOutcome as NodeOutcome  # part of RunResult

TRIGGER_ID = SearchAttributeKey.for_keyword("TriggerId")
TRIGGER_PROVIDER = SearchAttributeKey.for_keyword("TriggerProvider")
TRIGGER_OWNER = SearchAttributeKey.for_keyword("TriggerOwner")

RUN_WORKFLOW_TYPE = "RunWorkflow"
TRIGGER_WORKFLOW_TYPE = "TriggerWorkflow"


@dataclass
class RunTarget:
    """What a run is: the built-in ``RunWorkflow`` (``run``: records the event; ``graph``:
    runs ``graph`` over the event's items) or the user's own workflow type (``workflow``)."""

    kind: str = "run"  # "run" | "workflow" | "graph"
    workflow_type: str | None = None
    task_queue: str | None = None
    # CEL over ``event`` and ``trigger`` giving a ``workflow`` run's input; None: the event.
    input: str | None = None
    # The validated graph as plain JSON (at most 200 nodes): it rides in the trigger's input
    # and in each graph run's input.
    graph: dict[str, Any] | None = None


@dataclass
class TriggerSpec:
    """Everything the trigger workflow needs; never secrets or provider config."""

    trigger_id: str
    name: str
    provider: str
    owner: str
    config_version: int
    target: RunTarget = field(default_factory=RunTarget)
    enabled: bool = True
    # The provider runs a source loop (cron, polling...) as this workflow's activity.
    source: bool = False
    # "skip": drop an event while this trigger's previous run is still running.
    overlap: str = "allow"
    # CEL over ``event`` and ``trigger``; only events for which it is true start a run.
    condition: str | None = None


@dataclass
class RecentEvent:
    """An event as the trigger received it, kept so a dry run can replay its decision.

    ``data`` is ``None`` and ``data_truncated`` true when the data's JSON was too large to
    keep (``data_size`` says how large it was, in bytes).
    """

    id: str
    key: str
    type: str
    time: str
    source: str
    subject: str | None = None
    data: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    data_truncated: bool = False
    data_size: int = 0
    # The claim check of data kept in the database (the dry run loads it from there).
    data_ref: str | None = None


@dataclass
class RecentEvents:
    """Query result: the latest accepted events, oldest first."""

    events: list[RecentEvent]


@dataclass
class StartFailure:
    """An accepted event whose run could not be started (for a reason other than "already
    started"): kept so it is visible and can be started again once the cause is fixed."""

    event_id: str
    event_key: str
    error: str
    at: str
    data_ref: str | None = None


@dataclass
class Recovery:
    """A trigger workflow that began without the state its predecessor had: what it
    resumed from. ``previous_status`` is how the previous run closed (completed after a
    disable, or terminated / failed / timed out by accident)."""

    at: str
    previous_run_id: str | None
    previous_status: str
    # "result" (a completed run's state), "query" (the closed run's state, replayed),
    # "history" (its last input plus the events signalled to it) or "none" (fresh).
    source: str
    pending_recovered: int = 0
    error: str | None = None


@dataclass
class RecoverInput:
    trigger_id: str
    # This run: the one to recover into, never recovered from.
    run_id: str


@dataclass
class RecoverResult:
    state: TriggerState | None
    recovery: Recovery | None


@dataclass
class WaitRunInput:
    """Wait until a run started by an earlier run of the trigger workflow closes."""

    run_id: str
    poll_seconds: float = 2.0


@dataclass
class SpillInput:
    trigger_id: str
    events: list[Event]


@dataclass
class SpillResult:
    ref: str


@dataclass
class UnspillInput:
    ref: str


@dataclass
class UnspillResult:
    events: list[Event]


@dataclass
class TriggerState:
    """Long-lived state, carried across continue-as-new."""

    events_received: int = 0
    runs_started: int = 0
    duplicates: int = 0
    skipped: int = 0
    # Condition outcomes: passed / dropped / error.
    filtered: dict[str, int] = field(default_factory=dict)
    # The latest condition errors, with their event ids (bounded).
    condition_errors: list[dict[str, str]] = field(default_factory=list)
    last_event_time: str | None = None
    last_error: str | None = None
    status: str = "active"
    consecutive_errors: int = 0
    next_retry_at: str | None = None
    cursor: Any = None
    next_at: str | None = None
    resume_at: str | None = None
    source_finished: bool = False
    continued_as_new: int = 0
    pending: list[Event] = field(default_factory=list)
    # Recently handled event keys: a cheap first dedup before the run's workflow ID does it.
    recent_keys: list[str] = field(default_factory=list)
    # The latest accepted events (bounded, data cut when large), for the dry run.
    recent_events: list[RecentEvent] = field(default_factory=list)
    # Runs that could not be started (bounded list, the total in ``failed_starts``).
    failed_starts: int = 0
    start_failures: list[StartFailure] = field(default_factory=list)
    # Events a source sent after a disable or a config change: not accepted, and its
    # cursor did not move past them.
    stale_dropped: int = 0
    # What earlier runs of this workflow resumed from after a close (bounded).
    recoveries: list[Recovery] = field(default_factory=list)
    # The overlap guard's run, when it was still running at continue-as-new.
    guard_run_id: str | None = None
    # A backlog too large to carry in continue-as-new's input, stored in the database in
    # chunks (oldest first), and how many events they hold.
    spilled_refs: list[str] = field(default_factory=list)
    spilled: int = 0


@dataclass
class TriggerInput:
    spec: TriggerSpec
    state: TriggerState | None = None


@dataclass
class TriggerStatus:
    """Query result: what the trigger workflow knows about itself."""

    trigger_id: str
    name: str
    enabled: bool
    config_version: int
    events_received: int
    runs_started: int
    duplicates: int
    skipped: int
    filtered: dict[str, int]
    condition_errors: list[dict[str, str]]
    status: str
    consecutive_errors: int
    next_retry_at: str | None
    cursor: Any
    next_at: str | None
    runs_in_flight: int
    pending: int
    last_event_time: str | None
    last_error: str | None
    continued_as_new: int
    history_length: int
    history_size: int = 0
    failed_starts: int = 0
    start_failures: list[StartFailure] = field(default_factory=list)
    stale_dropped: int = 0
    last_recovery: Recovery | None = None


@dataclass
class RunResult:
    event_id: str
    event_key: str
    event_type: str
    trigger_id: str
    recorded_at: str
    # Graph runs only: every node in the order it ran.
    nodes: list[NodeOutcome] | None = None
    calls: int = 0


@dataclass
class HttpRequestInput:
    """One ``http_request`` node call. The activity loads the owner's network allowlist
    itself (by ``trigger_id``): the allowlist never rides in workflow history."""

    trigger_id: str
    node_id: str
    method: str
    url: str
    headers: dict[str, str]
    body: Any
    timeout_seconds: float
    # The activity's attempts (the node's retries + 1): the last 5xx answer is returned
    # instead of retried.
    attempts: int = 1


@dataclass
class HttpResponse:
    """The answer, as the next nodes see it (an item): JSON body parsed, else text; bodies
    above the cap are cut and ``truncated`` is set."""

    status: int
    headers: dict[str, str]
    body: Any
    truncated: bool = False
