"""The trigger workflow carries the same search attributes as its runs, so
``TriggerId="<id>"`` lists the trigger and its runs; the workflow type tells them apart."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from dataclasses import replace

from temporalio.common import SearchAttributePair, TypedSearchAttributes

from api.control import spec_of
from tests.conftest import Stack, eventually
from tests.helpers import github_trigger, post_github, runs_of
from triggers.contracts.names import TRIGGER_ID, TRIGGER_OWNER, TRIGGER_PROVIDER
from triggers.contracts.trigger import TriggerInput
from triggers.core.events import run_workflow_id, trigger_workflow_id
from triggers.infra import store
from triggers.infra.db import make_engine, session_factory
from workers.devserver import DevServer
from workers.processes import temporal_binary
from workflows.trigger import TriggerWorkflow


async def _listed(s: Stack, tid: str) -> dict[str, tuple[str, dict[str, object]]]:
    """Workflow id -> (type, TriggerId/Provider/Owner) as visibility lists ``TriggerId``."""
    found = {}
    async for wf in s.client.list_workflows(f'TriggerId="{tid}"'):
        attrs = wf.typed_search_attributes
        keys = (TRIGGER_ID, TRIGGER_PROVIDER, TRIGGER_OWNER)
        found[wf.id] = (wf.workflow_type, {k.name: attrs.get(k) for k in keys})
    return found


async def test_trigger_id_lists_the_trigger_and_its_runs(
    sqlite_stack: Stack, temporal: DevServer
) -> None:
    s = sqlite_stack
    trigger = await s.create_trigger(github_trigger(name="seen"))
    tid = trigger["id"]
    assert (await post_github(s.http, tid, delivery="v-1")).status_code == 202
    me = (await s.http.get("/api/me", headers=s.alice)).json()
    same = {"TriggerId": tid, "TriggerProvider": "webhook", "TriggerOwner": me["id"]}
    expected = {
        trigger_workflow_id(tid): ("TriggerWorkflow", same),
        run_workflow_id(tid, "v-1"): ("RunWorkflow", same),
    }

    async def both() -> bool:  # visibility lags a moment
        return await _listed(s, tid) == expected

    await eventually(both)
    # The runs alone, as the helpers and the status's runs_in_flight ask for them.
    assert await runs_of(s.client, tid) == [run_workflow_id(tid, "v-1")]

    # What the README tells a user to run.
    out = await asyncio.to_thread(
        subprocess.run,
        [temporal_binary(), "workflow", "list", "--address", temporal.address]
        + ["--query", f'TriggerId="{tid}"', "--output", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    rows = json.loads(out.stdout or "[]")
    listed = sorted((r["type"]["name"], r["execution"]["workflowId"]) for r in rows)
    assert listed == [
        ("RunWorkflow", run_workflow_id(tid, "v-1")),
        ("TriggerWorkflow", f"trigger:{tid}"),
    ]


async def test_a_trigger_workflow_started_without_it_sets_it(sqlite_stack: Stack) -> None:
    """A trigger workflow an older API started (TriggerProvider and TriggerOwner only) sets
    its TriggerId itself."""
    s = sqlite_stack
    body = {**github_trigger(name="older"), "enabled": False}
    tid = (await s.create_trigger(body))["id"]
    engine = make_engine(s.settings.resolved_database_url)
    try:
        async with session_factory(engine)() as session:
            row = await store.get_trigger(session, trigger_id=uuid.UUID(tid))
    finally:
        await engine.dispose()
    assert row is not None
    spec = replace(spec_of(row), enabled=True)
    handle = await s.client.start_workflow(
        TriggerWorkflow.run,
        TriggerInput(spec=spec),
        id=trigger_workflow_id(tid),
        task_queue=s.settings.task_queue,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(TRIGGER_PROVIDER, spec.provider),
                SearchAttributePair(TRIGGER_OWNER, spec.owner),
            ]
        ),
    )
    try:

        async def listed() -> bool:
            found = await _listed(s, tid)
            return found.get(handle.id, ("", {}))[1].get("TriggerId") == tid

        await eventually(listed)
    finally:
        await handle.terminate("test over")
