"""``plan_graph``: one planning step of a graph run, as a local activity of ``RunWorkflow``.

The step is CPU work (CEL over every item at every node): it runs in a thread, so the
worker's event loop (pollers, heartbeats, other activities) is not held, under a CPU
budget of ``PLAN_BUDGET_SECONDS``. Between steps the worker keeps each run's planner, so a
run's planning is linear in its node visits; without it (another worker, a restart, more
runs in flight than it keeps) a step plans again from the start, to the same point.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from temporalio import activity

from triggers.contracts.names import PLAN_GRAPH_ACTIVITY
from triggers.contracts.run import PlanGraphInput, PlanGraphResult
from triggers.core.graph import Planner
from triggers.core.graph_steps import PLAN_BUDGET_SECONDS, plan_step

# Runs whose planner the worker keeps between steps (the least recently used go first).
KEPT_PLANNERS = 256


class GraphPlanActivities:
    """The planners this worker keeps, by workflow run."""

    def __init__(self, kept: int = KEPT_PLANNERS) -> None:
        self._kept = kept
        self._planners: OrderedDict[str, Planner] = OrderedDict()

    @activity.defn(name=PLAN_GRAPH_ACTIVITY)
    async def plan_graph(self, inp: PlanGraphInput) -> PlanGraphResult:
        info = activity.info()
        key = f"{info.workflow_id}/{info.workflow_run_id}"
        # Taken out while in use: a retried attempt never shares a planner with the first.
        planner = self._planners.pop(key, None)
        step, planner = await asyncio.to_thread(
            plan_step, inp, planner, budget_seconds=PLAN_BUDGET_SECONDS
        )
        if planner is not None:
            self._planners[key] = planner
            while len(self._planners) > self._kept:
                self._planners.popitem(last=False)
        return PlanGraphResult.of(step)
