"""A graph run's planning, one step at a time: the ``plan_graph`` activity's contract and
the step itself.

A step plans from where the run is up to the next node whose calls must be made before the
nodes after it can be planned (``http_request``, ``start_workflow`` and ``delay`` nodes that
have calls); ``log`` calls on the way come with it. The run makes the calls, records what the
node produced in ``done`` and asks for the next step. Given the same input, a step gives the
same result: the worker keeps each run's :class:`~triggers.graph.Planner` between steps so
that planning stays linear in the graph's node visits, and plans again from the start, to
the same point, when it has none (another worker, a restart).

Pure (no I/O): workflows import it through the sandbox. The activity is
``activities/graph_plan.py``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from triggers.cel_budget import BudgetExceeded, cpu_budget
from triggers.conditions import TriggerInfo
from triggers.events import Event
from triggers.graph import (
    Call,
    GraphError,
    NodeRun,
    PlanError,
    Planner,
    items_of,
    parse_graph,
)

PLAN_GRAPH = "plan_graph"
# CPU time one step may use (the worker's thread clock). Measured on 2 cores
# (benchmarks/graph_planning.py): a node costs about 0.2 ms per item for a short expression,
# and the largest graph the API accepts plans 5 items in about 1 s.
PLAN_BUDGET_SECONDS = 10.0
# Nodes the run waits for; a ``log`` node's calls are made where they are planned.
WAITING_TYPES = frozenset({"http_request", "start_workflow", "delay"})
# ApplicationError types the run fails with (never retried).
EVENT_ERROR = "EventError"
GRAPH_LIMIT = "GraphLimit"


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


def plan_step(
    inp: PlanGraphInput, planner: Planner | None = None, *, budget_seconds: float | None = None
) -> tuple[PlanGraphResult, Planner | None]:
    """The next step of a run, and the planner to keep for the step after it.

    ``planner``: the one this function returned for the previous step, if kept; it is used
    only if it stopped where ``inp.done`` says the run is. ``budget_seconds``: the step's CPU
    budget (``None``: no clock is read, as workflow code needs).
    """
    done = [d.node_id for d in inp.done]
    with cpu_budget(budget_seconds):
        try:
            if planner is not None and _stopped_at(planner, done):
                planner.finish(inp.done[-1].produced)
            else:
                planner = Planner(
                    parse_graph(inp.graph, bounded=False),
                    items_of(inp.event),
                    inp.event,
                    inp.trigger,
                )
            produced = {d.node_id: d.produced for d in inp.done}
            while (waiting := planner.advance(_waits)) is not None:
                if waiting.node_id not in produced:
                    break
                planner.finish(produced[waiting.node_id])
        except GraphError as err:
            # Checked when the graph was saved; one that fails here cannot run at all.
            return PlanGraphResult(error=f"invalid graph: {err}"), None
        except PlanError as err:
            kind = EVENT_ERROR if err.kind == "event" else GRAPH_LIMIT
            return PlanGraphResult(error=str(err), error_type=kind), None
        except BudgetExceeded:
            where = f" at node {planner.current!r}" if planner and planner.current else ""
            msg = f"planning the graph exceeded its budget ({budget_seconds:g} s CPU){where}"
            return PlanGraphResult(error=msg, error_type=GRAPH_LIMIT), None
    counts = Counter(call.node_id for call in planner.calls)
    outcomes = [
        NodeOutcome(
            node_id=run.node_id,
            type=run.type,
            items_in=len(run.items_in),
            items_out=len(run.items_out),
            errors=[f"{e.index}: {e.message}" for e in run.errors],
            calls=counts[run.node_id],
        )
        for run in planner.runs[inp.outcomes_known :]
    ]
    result = PlanGraphResult(
        calls=planner.calls[inp.calls_made :],
        outcomes=outcomes,
        waiting=planner.waiting.node_id if planner.waiting else None,
    )
    return result, planner if planner.waiting else None


def _waits(run: NodeRun, calls: list[Call]) -> bool:
    return bool(calls) and run.type in WAITING_TYPES


def _stopped_at(planner: Planner, done: list[str]) -> bool:
    """Whether ``planner`` stopped where the run is: at the last node in ``done``, with the
    ones before it finished."""
    waiting = planner.waiting
    return (
        waiting is not None
        and bool(done)
        and waiting.node_id == done[-1]
        and planner.finished_waits == done[:-1]
    )
