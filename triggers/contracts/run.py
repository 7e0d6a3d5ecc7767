"""``RunWorkflow``'s result, the graph's ``plan_graph`` local activity (input and result)
and its ``http_request`` activity (input and answer)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from triggers.contracts.names import EVENT_ERROR, GRAPH_LIMIT
from triggers.core.conditions import TriggerInfo
from triggers.core.events import Event
from triggers.core.graph import Call
from triggers.core.graph_steps import Step


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
class NodeDone:
    """A waited-for node whose calls the run made: what its items became (``None``: they
    passed on as they came, as a ``delay``'s do)."""

    node_id: str
    produced: list[Any] | None = None


@dataclass
class PlanGraphInput:
    """Where a graph run is: ``plan_graph`` plans its next step from here
    (``triggers.core.graph_steps.plan_step``)."""

    graph: dict[str, Any]
    event: Event
    trigger: TriggerInfo
    # Every waited-for node so far, in the order the run made their calls.
    done: list[NodeDone] = field(default_factory=list)
    # How many calls and node outcomes the run has from earlier steps.
    calls_made: int = 0
    outcomes_known: int = 0


@dataclass
class PlanGraphResult:
    """The calls to make now, in order (``log`` calls, then ``waiting``'s), the outcomes of
    the nodes finished in this step, and ``waiting``: the node to record in ``done`` next
    (``None``: the graph is finished). ``error``: the run fails with it (type ``error_type``)."""

    calls: list[Call] = field(default_factory=list)
    outcomes: list[NodeOutcome] = field(default_factory=list)
    waiting: str | None = None
    error: str | None = None
    error_type: str | None = None

    @classmethod
    def of(cls, step: Step) -> PlanGraphResult:
        """The result that carries ``step`` (the core's step) across the boundary."""
        if step.error is not None:
            kind = {"event": EVENT_ERROR, "limit": GRAPH_LIMIT}.get(step.error_kind or "")
            return cls(error=step.error, error_type=kind)
        outcomes = [
            NodeOutcome(
                node_id=run.node_id,
                type=run.type,
                items_in=len(run.items_in),
                items_out=len(run.items_out),
                errors=[f"{e.index}: {e.message}" for e in run.errors],
                calls=step.call_counts.get(run.node_id, 0),
            )
            for run in step.finished
        ]
        return cls(calls=step.calls, outcomes=outcomes, waiting=step.waiting)


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
    """One ``http_request`` node call. The activity loads the network allowlist of
    ``principal`` itself: the allowlist never rides in workflow history."""

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
    # The user whose allowlist applies: the one who last chose where the graph the run
    # started with sends requests; "" nobody's (public addresses only). None: a run from
    # before target principals, which uses the trigger's current one.
    principal: str | None = None


@dataclass
class HttpResponse:
    """The answer, as the next nodes see it (an item): JSON body parsed, else text; bodies
    above the cap are cut and ``truncated`` is set."""

    status: int
    headers: dict[str, str]
    body: Any
    truncated: bool = False
