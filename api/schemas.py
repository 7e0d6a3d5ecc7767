"""Request and response bodies of the API. Secrets are write-only: no response carries them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.text import SafeAny, SafeJson, SafeStr
from triggers.models import ShareRole


class TargetIn(BaseModel):
    """What a run is. ``run``: the built-in RunWorkflow, which records the event.
    ``workflow``: your own workflow type on your task queue, started with the event as input,
    or with what ``input`` makes of it.
    ``graph``: the built-in RunWorkflow runs ``graph`` (nodes and edges) over the event's
    items; the graph is checked when the trigger is created or updated."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["run", "workflow", "graph"] = "run"
    workflow_type: SafeStr | None = Field(default=None, min_length=1, max_length=200)
    task_queue: SafeStr | None = Field(default=None, min_length=1, max_length=200)
    input: SafeStr | None = Field(
        default=None,
        max_length=10_000,
        description="For a `workflow` target: CEL over `event` and `trigger` giving the "
        "workflow's input (default: the whole event). Example: "
        '`{"ref": event.data.ref, "who": trigger.name}`. An event on which it fails is '
        "dropped and recorded in `condition_errors`.",
    )
    graph: SafeJson | None = Field(
        default=None,
        description="The run graph (`nodes`, `edges`) when kind is 'graph'; see triggers.graph.",
    )

    @field_validator("task_queue")
    @classmethod
    def _not_reserved(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("/_sys/"):
            raise ValueError("task queue names starting with /_sys/ are reserved by Temporal")
        if value is not None and not value.isprintable():
            raise ValueError("must be printable text")
        return value

    @model_validator(mode="after")
    def _needs_type(self) -> TargetIn:
        if self.kind == "workflow" and not (self.workflow_type and self.task_queue):
            raise ValueError("workflow_type and task_queue are required when kind is 'workflow'")
        if self.input is not None and self.kind != "workflow":
            raise ValueError("input is only for a 'workflow' target")
        if self.kind == "graph" and self.graph is None:
            raise ValueError("graph is required when kind is 'graph'")
        if self.kind != "graph" and self.graph is not None:
            raise ValueError("graph is only allowed when kind is 'graph'")
        return self


class TriggerBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: SafeStr = Field(min_length=1, max_length=200)
    provider: SafeStr = Field(min_length=1, max_length=64)
    config: SafeJson = Field(default_factory=dict)
    target: TargetIn = Field(default_factory=TargetIn)
    condition: SafeStr | None = Field(
        default=None,
        max_length=10_000,
        description="CEL over `event` (id, source, type, time, subject, data, headers) and "
        "`trigger` (id, name, provider); only events for which it is true start a run. "
        'Example: `event.data.ref == "refs/heads/main"`.',
    )


class TriggerCreate(TriggerBase):
    enabled: bool = True
    secrets: dict[SafeStr, SafeStr] = Field(
        default_factory=dict, description="Write-only: stored encrypted, never returned."
    )


class TriggerUpdate(BaseModel):
    """Fields to change. ``config`` replaces the whole config; ``secrets`` sets the given
    secrets and removes those set to null."""

    model_config = ConfigDict(extra="forbid")

    name: SafeStr | None = Field(default=None, min_length=1, max_length=200)
    config: SafeJson | None = None
    target: TargetIn | None = None
    condition: SafeStr | None = Field(
        default=None, max_length=10_000, description="CEL condition; null removes it."
    )
    secrets: dict[SafeStr, SafeStr | None] | None = None


class TriggerPublic(BaseModel):
    id: uuid.UUID
    name: str
    provider: str
    config: dict[str, Any]
    target: dict[str, Any]
    condition: str | None
    enabled: bool
    status: str
    last_error: str | None
    config_version: int
    secret_names: list[str] = Field(description="Names of the secrets set; never their values.")
    owner_id: uuid.UUID
    role: str
    webhook_url: str | None = None
    workflow_id: str
    created_at: datetime
    updated_at: datetime

    @field_validator("created_at", "updated_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # SQLite hands back naive datetimes; they were written in UTC.
        return value if value.tzinfo else value.replace(tzinfo=UTC)


class TriggerPage(BaseModel):
    items: list[TriggerPublic]
    total: int
    limit: int
    offset: int


class TriggerRuntime(BaseModel):
    """Health of a trigger: what its workflow reports (query) and how its source loop is
    doing (retries, last error, cursor, next fire or poll time); ``running: false`` when
    no workflow runs."""

    running: bool
    workflow_id: str
    status: str = Field(
        default="disabled",
        description="active | degraded (source retrying) | failed (config) | finished | disabled",
    )
    events_received: int = 0
    runs_started: int = 0
    duplicates: int = 0
    skipped: int = Field(default=0, description="Events dropped by the overlap policy.")
    filtered: dict[str, int] = Field(
        default_factory=dict, description="Condition outcomes: passed, dropped, error."
    )
    condition_errors: list[dict[str, str]] = Field(
        default_factory=list, description="The latest condition errors with their event ids."
    )
    runs_in_flight: int = 0
    cursor: Any = None
    next_at: str | None = Field(default=None, description="Next fire or poll time.")
    consecutive_errors: int = 0
    next_retry_at: str | None = None
    pending: int = 0
    last_event_time: str | None = None
    last_error: str | None = None
    continued_as_new: int = 0
    history_length: int = Field(default=0, description="Events in the current run's history.")
    history_size: int = Field(default=0, description="Bytes of the current run's history.")
    config_version: int | None = None
    failed_starts: int = Field(
        default=0, description="Accepted events whose run could not be started."
    )
    start_failures: list[dict[str, Any]] = Field(
        default_factory=list,
        description="The latest of those: event id and key, the reason, when.",
    )
    stale_dropped: int = Field(
        default=0,
        description="Events a source sent after a disable or config change: not accepted.",
    )
    last_recovery: dict[str, Any] | None = Field(
        default=None,
        description="When the trigger workflow last began after an accidental close "
        "(terminated, failed, timed out): how it closed and what was resumed.",
    )


class ShareIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: SafeStr = Field(min_length=1, description="The user name to share with.")
    role: ShareRole


class ShareOut(BaseModel):
    user: str
    role: str


class WebhookAccepted(BaseModel):
    event_id: str
    event_key: str
    run_id: str
    duplicate: bool


class ErrorOut(BaseModel):
    detail: Any


# -- the dry run ----------------------------------------------------------------------------

MAX_SAMPLE_EVENTS = 100


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


class SampleEvent(BaseModel):
    """An event to try a trigger on, shaped like the events the trigger receives."""

    model_config = ConfigDict(extra="forbid")

    id: SafeStr = Field(min_length=1, max_length=500)
    key: SafeStr | None = Field(
        default=None, min_length=1, max_length=500, description="Default: the id."
    )
    source: SafeStr = Field(default="dry-run", max_length=500)
    type: SafeStr = Field(default="dry-run", max_length=500)
    time: SafeStr = Field(default_factory=_now_iso, max_length=100, description="Default: now.")
    subject: SafeStr | None = Field(default=None, max_length=500)
    data: SafeAny = None
    headers: dict[SafeStr, SafeStr] = Field(default_factory=dict)


class DryRunIn(BaseModel):
    """Either ``events`` (samples) or ``last`` (the trigger's latest accepted events)."""

    model_config = ConfigDict(extra="forbid")

    events: list[SampleEvent] | None = Field(default=None, max_length=MAX_SAMPLE_EVENTS)
    last: int | None = Field(default=None, ge=1, le=20)

    @model_validator(mode="after")
    def _one_of(self) -> DryRunIn:
        if (self.events is None) == (self.last is None):
            raise ValueError("give either events or last")
        return self


class ConditionOut(BaseModel):
    result: Literal["passed", "dropped", "error"]
    error: str | None = None


class ItemErrorOut(BaseModel):
    index: int
    message: str


class NodeOut(BaseModel):
    node_id: str
    type: str
    items_in: list[Any]
    items_out: list[Any]
    outputs: dict[str, list[Any]]
    errors: list[ItemErrorOut]


class CallOut(BaseModel):
    node_id: str
    type: str
    item_index: int
    args: dict[str, Any]


class GraphPlanOut(BaseModel):
    executed: list[str] = Field(description="The nodes that would receive items, in order.")
    nodes: list[NodeOut]
    calls: list[CallOut] = Field(description="The side effects the run would perform.")
    error: str | None = None


class DryRunResult(BaseModel):
    event_id: str
    event_key: str
    run_id: str = Field(description="The run this event would start (or has started).")
    would_start: bool
    condition: ConditionOut = Field(
        description="The condition's outcome; a failing input mapping is an error here too."
    )
    input: Any = Field(
        default=None, description="For a workflow target: the input the run would get."
    )
    graph: GraphPlanOut | None = None
    data_truncated: bool = Field(
        default=False,
        description="The event's data was too large to keep: it was tried with null data.",
    )


class DryRunOut(BaseModel):
    results: list[DryRunResult]
