"""Request and response bodies of the API. Secrets are write-only: no response carries them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from api.body_schemas import AnyProviderConfig, ProviderUnion, one_of
from api.text import NON_BLANK_PATTERN, SafeJson, SafeStr
from triggers.core.graph import Graph
from triggers.infra.models import ShareRole

# Field definitions shared by the runtime models and the forms the OpenAPI publishes.
Name = Annotated[SafeStr, Field(min_length=1, max_length=200)]
WorkflowType = Annotated[SafeStr, Field(min_length=1, max_length=200)]


def task_queue_name(value: str) -> str:
    if value.startswith("/_sys/"):
        raise ValueError("task queue names starting with /_sys/ are reserved by Temporal")
    if not value.isprintable():
        raise ValueError("must be printable text")
    return value


TaskQueueName = Annotated[
    SafeStr,
    Field(
        min_length=1,
        max_length=200,
        # What task_queue_name enforces, as far as a pattern can say "printable".
        json_schema_extra={"pattern": "^(?!/_sys/)[^\\u0000-\\u001f\\u007f-\\u009f]*$"},
        description="Printable; names starting with /_sys/ are reserved by Temporal.",
    ),
    AfterValidator(task_queue_name),
]
InputMapping = Annotated[
    SafeStr,
    Field(
        max_length=10_000,
        json_schema_extra={"minLength": 1},  # "" is refused as an empty expression
        description="For a `workflow` target: CEL over `event` and `trigger` giving the "
        "workflow's input (default: the whole event). Example: "
        '`{"ref": event.data.ref, "who": trigger.name}`. An event on which it fails is '
        "dropped and recorded in `condition_errors`. Must compile as CEL.",
    ),
]
SecretValue = Annotated[
    SafeStr,
    Field(json_schema_extra={"pattern": NON_BLANK_PATTERN}),
]
Condition = Annotated[
    SafeStr,
    Field(
        max_length=10_000,
        json_schema_extra={"minLength": 1},  # "" is refused as an empty expression
        description="CEL over `event` (id, source, type, time, subject, data, headers) and "
        "`trigger` (id, name, provider); only events for which it is true start a run. "
        'Example: `event.data.ref == "refs/heads/main"`. Must compile as CEL.',
    ),
]


class TargetRun(BaseModel):
    """The built-in RunWorkflow, which records the event."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["run"] = "run"
    workflow_type: None = None
    task_queue: None = None
    input: None = None
    graph: None = None


class TargetWorkflow(BaseModel):
    """Your own workflow type on your task queue, started with the event as input, or
    with what ``input`` makes of it."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["workflow"]
    workflow_type: WorkflowType
    task_queue: TaskQueueName
    input: InputMapping | None = None
    graph: None = None


class TargetGraph(BaseModel):
    """The built-in RunWorkflow runs ``graph`` (nodes and edges) over the event's items."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["graph"]
    graph: Graph
    workflow_type: None = None
    task_queue: None = None
    input: None = None


class TargetIn(BaseModel):
    """What a run is. ``run``: the built-in RunWorkflow, which records the event.
    ``workflow``: your own workflow type on your task queue, started with the event as input,
    or with what ``input`` makes of it.
    ``graph``: the built-in RunWorkflow runs ``graph`` (nodes and edges) over the event's
    items; the graph is checked when the trigger is created or updated."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["run", "workflow", "graph"] = "run"
    workflow_type: WorkflowType | None = None
    task_queue: TaskQueueName | None = None
    input: InputMapping | None = None
    graph: SafeJson | None = Field(
        default=None,
        description=(
            "The run graph (`nodes`, `edges`) when kind is 'graph'; see triggers.core.graph."
        ),
    )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return one_of(handler, TargetRun, TargetWorkflow, TargetGraph)

    @model_validator(mode="after")
    def _needs_type(self) -> TargetIn:
        if self.kind == "workflow" and not (self.workflow_type and self.task_queue):
            raise ValueError("workflow_type and task_queue are required when kind is 'workflow'")
        if self.kind != "workflow" and (self.workflow_type or self.task_queue):
            raise ValueError("workflow_type and task_queue are only for a 'workflow' target")
        if self.input is not None and self.kind != "workflow":
            raise ValueError("input is only for a 'workflow' target")
        if self.kind == "graph" and self.graph is None:
            raise ValueError("graph is required when kind is 'graph'")
        if self.kind != "graph" and self.graph is not None:
            raise ValueError("graph is only allowed when kind is 'graph'")
        return self


class TriggerBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    provider: SafeStr = Field(min_length=1, max_length=64)
    config: SafeJson = Field(default_factory=dict)
    target: TargetIn = Field(default_factory=TargetIn)
    condition: Condition | None = None


class TriggerCreate(TriggerBase):
    """A new trigger. ``config`` and ``secrets`` are those of its ``provider``."""

    enabled: bool = True
    secrets: dict[SafeStr, SecretValue] = Field(
        default_factory=dict, description="Write-only: stored encrypted, never returned."
    )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return ProviderUnion.schema(cls, handler)


class TriggerUpdate(BaseModel):
    """Fields to change. ``config`` replaces the whole config; ``secrets`` sets the given
    secrets and removes those set to null."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    config: Annotated[SafeJson | None, AnyProviderConfig()] = None
    target: TargetIn | None = None
    condition: Condition | None = Field(default=None, description="CEL condition; null removes it.")
    secrets: dict[SafeStr, SecretValue | None] | None = Field(
        default=None,
        description="Write-only. Names the trigger's provider takes; null removes one.",
    )


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
    network_principal_id: uuid.UUID | None = Field(
        default=None,
        description="Whose network allowlist the source goes through: the user who last "
        "changed where it connects (the owner, unless an editor did).",
    )
    target_principal_id: uuid.UUID | None = Field(
        default=None,
        description="Whose network allowlist a graph target's http_request nodes go "
        "through: the user who last changed where they send requests (the owner, unless an "
        "editor did).",
    )
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


class ShareIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: SafeStr = Field(min_length=1, description="The user name to share with.")
    role: ShareRole


class ShareOut(BaseModel):
    user: str
    role: str


class WebhookAccepted(BaseModel):
    """A delivery durably accepted (202). Whether it starts a run is ``would_start``."""

    event_id: str = Field(description="The event's id (the sender's delivery id, bounded).")
    event_key: str = Field(description="The deduplication key used (see ``run_id``).")
    run_id: str = Field(
        description="The workflow ID of the run this event starts if it passes the "
        "trigger's condition, ``run:<trigger-id>:<event-key>``. A run with this ID exists "
        "only when ``would_start`` is true (and its start did not fail, see "
        "``failed_starts`` in the status); an event the condition drops never gets one."
    )
    duplicate: bool = Field(
        description="A repeat of a delivery this API process accepted lately; nothing "
        "new was accepted, and its first delivery decided its run."
    )
    would_start: bool | None = Field(
        description="Whether the event passed the trigger's condition (and input mapping) "
        "when it was accepted, so that its run ``run_id`` is started: false when it was "
        "dropped (the condition was false or failed; counted in ``filtered`` of the "
        "status). Null for a ``duplicate``, which is not decided again."
    )
    captured: bool = Field(
        default=False,
        description='Taken as a test event by the builder page\'s "listen for a test event" '
        "(only while someone listens): shown there, not accepted, no run started.",
    )


class ErrorOut(BaseModel):
    detail: Any
