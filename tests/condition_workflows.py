"""A workflow that evaluates a condition and plans a graph inside Temporal's sandbox, the way
the trigger and run workflows will: the CEL modules come in through passthrough."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from triggers.core.conditions import TriggerInfo, compile_expression
    from triggers.core.events import Event
    from triggers.core.graph import dry_run, parse_graph


@dataclass
class ProbeInput:
    event: Event
    condition: str
    graph: dict[str, Any]


@dataclass
class ProbeResult:
    result: str
    error: str | None
    calls: list[dict[str, Any]] = field(default_factory=list)


@workflow.defn(name="ConditionProbe")
class ConditionProbe:
    @workflow.run
    async def run(self, inp: ProbeInput) -> ProbeResult:
        trigger = TriggerInfo(id="t-1", name="probe", provider="webhook")
        out = dry_run(
            inp.event,
            trigger,
            condition=compile_expression(inp.condition),
            graph=parse_graph(inp.graph),
        )
        calls = [] if out.plan is None else [call.args for call in out.plan.calls]
        return ProbeResult(out.condition.result, out.condition.error, calls)
