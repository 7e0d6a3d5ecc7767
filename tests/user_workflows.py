"""Users' own workflow types, started by triggers with a ``workflow`` target."""

from __future__ import annotations

from typing import Any

from temporalio import workflow


@workflow.defn(name="UserDeploy")
class UserDeploy:
    @workflow.run
    async def run(self, event: dict[str, Any]) -> str:
        return f"deployed {event['data']['ref']}"


@workflow.defn(name="HeldRun")
class HeldRun:
    """Stays running until released: an in-flight run for continue-as-new tests."""

    def __init__(self) -> None:
        self._released = False

    @workflow.run
    async def run(self, event: dict[str, Any]) -> str:
        await workflow.wait_condition(lambda: self._released)
        return f"released {event['key']}"

    @workflow.signal
    def release(self) -> None:
        self._released = True


@workflow.defn(name="UserEcho")
class UserEcho:
    """Returns its input: shows exactly what a trigger started it with."""

    @workflow.run
    async def run(self, inp: Any) -> Any:
        return inp


@workflow.defn(name="GraphChild")
class GraphChild:
    """Started by a graph's ``start_workflow`` node with what the node's input gives."""

    @workflow.run
    async def run(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"deployed": payload["ref"], "by": "GraphChild"}


@workflow.defn(name="TriggerWorkflow")
class StatuslessTrigger:
    """A foreign or outdated worker on a trigger's task queue: it runs ``TriggerWorkflow``
    but knows no ``status`` query, so the real server fails that query. Never register it
    next to the real TriggerWorkflow."""

    @workflow.run
    async def run(self, inp: Any) -> None:
        await workflow.wait_condition(lambda: False)
