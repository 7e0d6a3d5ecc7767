"""The dry run: what a trigger would do with some events, decided in the API process by the
same pure functions as the trigger workflow (``triggers.core.conditions.decide_run``, and
``triggers.core.graph`` for graph targets), so nothing is started and nothing is called."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from api.control import spec_of
from api.dryrun_schemas import (
    CallOut,
    ConditionOut,
    DryRunResult,
    GraphPlanOut,
    ItemErrorOut,
    NodeOut,
    SampleEvent,
)
from triggers.core import graph as graphs
from triggers.core.conditions import EVALUATION_BUDGET_SECONDS, TriggerInfo, decide_run
from triggers.core.events import Event, run_workflow_id
from triggers.infra.models import Trigger


def event_of_sample(sample: SampleEvent) -> Event:
    return Event(
        id=sample.id,
        key=sample.key or sample.id,
        source=sample.source,
        type=sample.type,
        time=sample.time,
        data=sample.data,
        subject=sample.subject,
        headers=dict(sample.headers),
    )


def _plan_out(planned: graphs.Plan) -> GraphPlanOut:
    return GraphPlanOut(
        executed=planned.executed,
        nodes=[
            NodeOut(
                node_id=run.node_id,
                type=run.type,
                items_in=run.items_in,
                items_out=run.items_out,
                outputs=run.outputs,
                errors=[ItemErrorOut(index=e.index, message=e.message) for e in run.errors],
            )
            for run in planned.nodes
        ],
        calls=[
            CallOut(node_id=c.node_id, type=c.type, item_index=c.item_index, args=c.args)
            for c in planned.calls
        ],
        error=planned.error,
    )


def try_events(trigger: Trigger, events: Iterable[tuple[Event, bool]]) -> list[DryRunResult]:
    """Decide each ``(event, data_truncated)`` as the trigger's workflow would now."""
    spec = spec_of(trigger)
    info = TriggerInfo(id=spec.trigger_id, name=spec.name, provider=spec.provider)
    mapping = spec.target.input if spec.target.kind == "workflow" else None
    raw_graph = (trigger.target or {}).get("graph")
    graph: graphs.Graph | None = None
    graph_error: str | None = None
    if raw_graph is not None:
        try:
            graph = graphs.parse_graph(raw_graph)
        except graphs.GraphError as err:
            graph_error = str(err)
    results = []
    for event, truncated in events:
        decision = decide_run(
            spec.condition, mapping, event, info, budget_seconds=EVALUATION_BUDGET_SECONDS
        )
        run_input: Any = None
        if decision.would_start and spec.target.kind == "workflow":
            run_input = decision.input if decision.mapped else dataclasses.asdict(event)
        plan_out: GraphPlanOut | None = None
        if decision.would_start and graph is not None:
            # The condition has passed already: the graph module only plans the nodes.
            planned = graphs.dry_run(event, info, condition=None, graph=graph).plan
            plan_out = _plan_out(planned) if planned is not None else None
        elif decision.would_start and graph_error is not None:
            plan_out = GraphPlanOut(executed=[], nodes=[], calls=[], error=graph_error)
        results.append(
            DryRunResult(
                event_id=event.id,
                event_key=event.key,
                run_id=run_workflow_id(spec.trigger_id, event.key),
                would_start=decision.would_start,
                condition=ConditionOut(
                    result=decision.outcome.result, error=decision.outcome.error
                ),
                input=run_input,
                graph=plan_out,
                data_truncated=truncated,
            )
        )
    return results
