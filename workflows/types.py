"""Dataclasses that cross the Temporal boundary: one in, one out, for every message."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from temporalio.common import SearchAttributeKey

from triggers.events import Event

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


@dataclass
class RecentEvents:
    """Query result: the latest accepted events, oldest first."""

    events: list[RecentEvent]


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


@dataclass
class NodeOutcome:
    """What one graph node did in a run: how many items came in and went out, the items it
    could not handle (``"<index>: <message>"``) and the side-effect calls it made."""

    node_id: str
    type: str
    items_in: int
    items_out: int
    errors: list[str] = field(default_factory=list)
    calls: int = 0


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
