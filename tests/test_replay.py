"""Determinism: recorded histories replay against the current workflow code.

Saved histories in ``tests/histories/`` come from earlier versions; a change that breaks
replay of a running trigger workflow fails here. Regenerate a new file (never edit old ones)
with ``TRIGGERS_SAVE_HISTORY=1 pytest tests/test_replay.py``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.conftest import Stack, eventually
from tests.helpers import github_trigger, post_github
from triggers.core.events import trigger_workflow_id
from workflows.run import RunWorkflow
from workflows.trigger import TriggerWorkflow

HISTORIES = Path(__file__).parent / "histories"


def _replayer() -> Replayer:
    return Replayer(workflows=[TriggerWorkflow, RunWorkflow])


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("*.json")), ids=lambda p: p.name)
async def test_saved_history_replays(path: Path) -> None:
    # A run's workflow ID carries its trigger id (``run:<trigger-id>:<event-key>``).
    workflow_id = f"run:saved:{path.stem}" if path.name.startswith("run_") else path.stem
    history = WorkflowHistory.from_json(workflow_id, path.read_text())
    await _replayer().replay_workflow(history)


async def test_fresh_trigger_history_replays(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    tid = (await s.create_trigger(github_trigger(name="replay")))["id"]
    deliveries = ["r-1", "r-2", "r-1", "r-3"]
    for d in deliveries:
        assert (await post_github(s.http, tid, delivery=d)).status_code == 202
    await asyncio.gather(*(post_github(s.http, tid, delivery=d) for d in ("r-4", "r-5", "r-4")))
    r = await s.http.patch(f"/api/triggers/{tid}", json={"name": "renamed"}, headers=s.alice)
    assert r.status_code == 200

    async def settled() -> bool:
        st = (await s.http.get(f"/api/triggers/{tid}/status", headers=s.alice)).json()
        return bool(st["runs_started"] == 5 and st["pending"] == 0 and st["config_version"] == 2)

    await eventually(settled)
    assert (await s.http.post(f"/api/triggers/{tid}/disable", headers=s.alice)).status_code == 200
    handle = s.client.get_workflow_handle(trigger_workflow_id(tid))
    await handle.result()
    history = await handle.fetch_history()
    await _replayer().replay_workflow(history)
    if os.environ.get("TRIGGERS_SAVE_HISTORY"):
        (HISTORIES / "trigger_workflow_v2.json").write_text(history.to_json())
