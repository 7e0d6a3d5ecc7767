"""Bodies of the dry run (``POST /api/triggers/{id}/test``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from api.body_schemas import one_of
from api.text import SafeAny, SafeStr

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


SampleEvents = Annotated[list[SampleEvent], Field(max_length=MAX_SAMPLE_EVENTS)]
LastCount = Annotated[
    int, Field(ge=1, le=20, description="How many of the trigger's latest accepted events.")
]


class DryRunSamples(BaseModel):
    """Try sample events."""

    model_config = ConfigDict(extra="forbid")

    events: SampleEvents


class DryRunLast(BaseModel):
    """Try the trigger's latest accepted events (up to 20 are kept)."""

    model_config = ConfigDict(extra="forbid")

    last: LastCount


class DryRunIn(BaseModel):
    """Either ``events`` (samples) or ``last`` (the trigger's latest accepted events)."""

    model_config = ConfigDict(extra="forbid")

    events: SampleEvents | None = None
    last: LastCount | None = None

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return one_of(handler, DryRunSamples, DryRunLast)

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
