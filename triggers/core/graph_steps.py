"""A graph run's planning, one step at a time (the ``plan_graph`` activity's work).

A step plans from where the run is up to the next node whose calls must be made before the
nodes after it can be planned (``http_request``, ``start_workflow`` and ``delay`` nodes that
have calls); ``log`` calls on the way come with it. The run makes the calls, records what the
node produced in ``done`` and asks for the next step. Given the same input, a step gives the
same result: the worker keeps each run's :class:`~triggers.core.graph.Planner` between steps
so that planning stays linear in the graph's node visits, and plans again from the start, to
the same point, when it has none (another worker, a restart).

Pure (no I/O): workflows import it through the sandbox. The activity's input and result
(``PlanGraphInput``, ``PlanGraphResult``) are in ``triggers.contracts.run``; the activity is
``activities/graph_plan.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from triggers.core.cel_budget import BudgetExceeded, cpu_budget
from triggers.core.conditions import TriggerInfo
from triggers.core.events import Event
from triggers.core.graph import (
    Call,
    GraphError,
    NodeRun,
    PlanError,
    Planner,
    items_of,
    parse_graph,
)

# CPU time one step may use (the worker's thread clock). Measured on 2 cores
# (benchmarks/graph_planning.py): a node costs about 0.2 ms per item for a short expression,
# and the largest graph the API accepts plans 5 items in about 1 s.
PLAN_BUDGET_SECONDS = 10.0
# Nodes the run waits for; a ``log`` node's calls are made where they are planned.
WAITING_TYPES = frozenset({"http_request", "start_workflow", "delay"})


class Done(Protocol):
    """A waited-for node whose calls the run made (``triggers.contracts.run.NodeDone``)."""

    @property
    def node_id(self) -> str: ...
    @property
    def produced(self) -> list[Any] | None: ...


class StepInput(Protocol):
    """Where the run is (``triggers.contracts.run.PlanGraphInput``)."""

    @property
    def graph(self) -> dict[str, Any]: ...
    @property
    def event(self) -> Event: ...
    @property
    def trigger(self) -> TriggerInfo: ...
    @property
    def done(self) -> Sequence[Done]: ...
    @property
    def calls_made(self) -> int: ...
    @property
    def outcomes_known(self) -> int: ...


@dataclass
class Step:
    """One step: the calls to make now, in order (``log`` calls, then ``waiting``'s), the
    nodes finished in this step (with every node's call count so far) and ``waiting``: the
    node to record in ``done`` next (``None``: the graph is finished). ``error``: the run
    fails with it; ``error_kind`` says why ("graph": invalid, "event": a bad expression over
    the event's data, "limit": a bound of the graph or the step's budget)."""

    calls: list[Call] = field(default_factory=list)
    finished: list[NodeRun] = field(default_factory=list)
    call_counts: dict[str, int] = field(default_factory=dict)
    waiting: str | None = None
    error: str | None = None
    error_kind: Literal["graph", "event", "limit"] | None = None


def plan_step(
    inp: StepInput, planner: Planner | None = None, *, budget_seconds: float | None = None
) -> tuple[Step, Planner | None]:
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
            return Step(error=f"invalid graph: {err}", error_kind="graph"), None
        except PlanError as err:
            return Step(error=str(err), error_kind=err.kind), None
        except BudgetExceeded:
            where = f" at node {planner.current!r}" if planner and planner.current else ""
            msg = f"planning the graph exceeded its budget ({budget_seconds:g} s CPU){where}"
            return Step(error=msg, error_kind="limit"), None
    step = Step(
        calls=planner.calls[inp.calls_made :],
        finished=planner.runs[inp.outcomes_known :],
        call_counts=dict(Counter(call.node_id for call in planner.calls)),
        waiting=planner.waiting.node_id if planner.waiting else None,
    )
    return step, planner if planner.waiting else None


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
