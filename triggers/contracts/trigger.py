"""The trigger workflow's contracts: its input and long-lived state, the ``events`` signal's
payload, its query results, and the inputs and results of the activities it runs for
itself (recovering a closed run's state, spilling and loading its backlog)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from triggers.contracts.health import DISABLED, FAILING, TriggerHealth
from triggers.core.events import Event


@dataclass
class EventBatch:
    """Signal payload: events delivered to a trigger workflow in one persisted signal, with
    the source's cursor after them (kept in the workflow's state)."""

    events: list[Event]
    cursor: Any = None
    # Set by a source activity: the config version it runs. The workflow accepts nothing
    # (neither events nor cursor) from a source of another version or of a disabled
    # trigger, so a disable or a config change stops the old source's events at once.
    config_version: int | None = None
    # A source's next fire / poll time, when it knows it (ISO 8601).
    next_at: str | None = None
    # The source started fine after an error: the trigger is active again.
    source_ok: bool = False
    # Set by a stream source (its health rides along). Its runtime acks upstream once this
    # signal is persisted, so the workflow never drops such a batch: of an older config
    # it is accepted with its verdicts, after a disable it is held (see workflows/streams.py).
    stream: StreamReport | None = None


@dataclass
class StreamReport:
    """What a stream source's runtime tells its workflow, on every signal it sends."""

    state: str = "connected"  # connected | paused
    lag: int | None = None
    pending: int | None = None
    # Messages dead-lettered since the previous report (the workflow sums them).
    dead_lettered: int = 0
    last_event_at: str | None = None


@dataclass
class StreamStatus:
    """A stream source's health as the trigger workflow knows it (status and state)."""

    # connecting | connected | paused | reconnecting | stopped
    state: str = "connecting"
    paused_by_backpressure: bool = False
    # Times it paused because this workflow's backlog was over the mark.
    pauses: int = 0
    last_event_at: str | None = None
    # Connections opened after the first one (errors, config changes, continue-as-new).
    reconnects: int = 0
    connections: int = 0
    # Where the broker can tell (Kafka end minus committed offsets; Redis pending).
    lag: int | None = None
    pending: int | None = None
    dead_letters: int = 0


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
    # Whose network allowlist the graph's http_request nodes use (a user id; "" nobody's:
    # public addresses only). It changes with the graph in one signal, and each run keeps
    # the pair it started with. None: a spec from before it existed.
    principal: str | None = None


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
    # The source is a push stream (``StreamProvider``): its activity lives until cancelled.
    stream: bool = False


@dataclass
class RecentEvent(Event):
    """An accepted event as the trigger keeps it for the dry run: the event itself, its
    verdict left out, its ``data`` ``None`` and ``data_truncated`` true when the data's JSON
    was too large to keep (``data_size`` says how large, in bytes). Claim-checked data
    stays behind ``data_ref`` (the dry run loads it from the database)."""

    data_truncated: bool = False
    data_size: int = 0


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
    # A stream source's health; and the events its last signals brought after a disable
    # (acked upstream already: started when the trigger is enabled again).
    stream: StreamStatus | None = None
    held: list[Event] = field(default_factory=list)
    # For the health (defaults: histories of older code replay and continue as before).
    # When a run was last started; when the source's cursor last moved; source attempts
    # after an error.
    last_run_start: str | None = None
    cursor_moved_at: str | None = None
    source_retries: int = 0


@dataclass
class TriggerInput:
    spec: TriggerSpec
    state: TriggerState | None = None


@dataclass
class TriggerStatus:
    """The trigger's runtime status, owned by its workflow: the status query's answer is
    what ``GET /api/triggers/{id}/status`` returns, as is.

    ``status``: active | degraded (the source is retrying) | failed (its config) | finished
    | disabled. ``skipped``: events dropped by the overlap policy. ``filtered``: condition
    outcomes (passed, dropped, error), ``condition_errors`` the latest errors with their
    event ids. ``next_at``: the next fire or poll time. ``pending``: accepted events whose
    runs are not started yet. ``runs_in_flight``: this trigger's runs still running, as
    Temporal's visibility counts them (the API fills it in). ``failed_starts``: accepted
    events whose run could not be started (the latest in ``start_failures``).
    ``stale_dropped``: events a source sent after a disable or a config change (not
    accepted). ``last_recovery``: when the workflow last began after an accidental close
    (terminated, failed, timed out), how it closed and what it resumed from.
    ``history_length`` / ``history_size``: events and bytes of the current run's history.
    ``stream``: a push stream's health (state connecting / connected / paused /
    reconnecting / stopped, ``paused_by_backpressure``, last event time, reconnects, lag and
    pending where the broker tells, dead letters); ``held``: stream events received after a
    disable, started on enable. ``health``: the same fields for every provider kind
    (``triggers/contracts/health.py``). ``running`` is false when no trigger workflow runs
    (then only the row's facts are set).
    """

    trigger_id: str
    workflow_id: str
    name: str
    enabled: bool
    config_version: int
    running: bool = True
    status: str = "disabled"
    events_received: int = 0
    runs_started: int = 0
    duplicates: int = 0
    skipped: int = 0
    filtered: dict[str, int] = field(default_factory=dict)
    condition_errors: list[dict[str, str]] = field(default_factory=list)
    consecutive_errors: int = 0
    next_retry_at: str | None = None
    cursor: Any = None
    next_at: str | None = None
    runs_in_flight: int = 0
    pending: int = 0
    last_event_time: str | None = None
    last_error: str | None = None
    continued_as_new: int = 0
    history_length: int = 0
    history_size: int = 0
    failed_starts: int = 0
    start_failures: list[StartFailure] = field(default_factory=list)
    stale_dropped: int = 0
    last_recovery: Recovery | None = None
    stream: StreamStatus | None = None
    # Stream events held while the trigger is disabled (not in ``pending``).
    held: int = 0
    # A workflow of older code answers without it: ``unknown``.
    health: TriggerHealth = field(default_factory=TriggerHealth)

    @classmethod
    def not_running(
        cls,
        *,
        trigger_id: str,
        workflow_id: str,
        name: str,
        enabled: bool,
        config_version: int,
        last_error: str | None,
    ) -> TriggerStatus:
        """A trigger without a running workflow: what its row knows."""
        return cls(
            trigger_id=trigger_id,
            workflow_id=workflow_id,
            name=name,
            enabled=enabled,
            config_version=config_version,
            running=False,
            last_error=last_error,
            health=TriggerHealth(
                state=FAILING if enabled else DISABLED,
                reason="enabled, but no trigger workflow runs" if enabled else None,
            ),
        )
