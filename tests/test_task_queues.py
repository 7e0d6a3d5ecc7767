"""Targets are authorised: a trigger starts workflows only on task queues its owner claimed
or was granted; the built-in runs on the service's own queue are always allowed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from typing import Any

import httpx
from temporalio.worker import Worker

from tests.conftest import Stack, eventually
from tests.helpers import count_runs, github_trigger, post_github, runs_of
from tests.user_workflows import UserDeploy
from triggers.core.events import run_workflow_id

API = "/api/triggers"


def workflow_target(queue: str, workflow_type: str = "UserDeploy") -> dict[str, Any]:
    return {"kind": "workflow", "workflow_type": workflow_type, "task_queue": queue}


def refused(r: httpx.Response, loc: list[str | int], code: int = 422) -> str:
    assert r.status_code == code, r.text
    (detail,) = r.json()["detail"]
    assert detail["loc"] == loc, detail
    return str(detail["msg"])


async def on_queue(s: Stack, queue: str) -> int:
    return (await s.client.count_workflows(f'TaskQueue="{queue}"')).count


async def me(s: Stack, user: dict[str, str]) -> dict[str, Any]:
    r = await s.http.get("/api/me", headers=user)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


async def test_a_queue_that_is_not_yours_is_refused_and_nothing_runs_there(
    sqlite_stack: Stack,
) -> None:
    s = sqlite_stack
    queue = f"alice-deploys-{uuid.uuid4().hex[:6]}"
    await s.claim_queues(queue)
    assert (await me(s, s.alice))["task_queues"] == [queue]
    # Bob cannot claim it, target it, or reach it through a graph or a change.
    r = await s.http.put("/api/me/task-queues", json={"queues": [queue]}, headers=s.bob)
    assert queue in refused(r, ["body", "queues", 0], 409)
    body = github_trigger("bob's") | {"target": workflow_target(queue, "AliceDeploy")}
    r = await s.http.post(API, json=body, headers=s.bob)
    assert queue in refused(r, ["body", "target", "task_queue"])
    node = {"id": "go", "type": "start_workflow", "workflow_type": "AliceDeploy"}
    for extra, name in (({"task_queue": queue}, queue), ({}, "own task queue")):
        graph = {"nodes": [node | extra], "edges": []}
        r = await s.http.post(
            API,
            json=github_trigger() | {"target": {"kind": "graph", "graph": graph}},
            headers=s.bob,
        )
        assert name in refused(r, ["body", "target", "graph", "nodes", 0, "task_queue"])
    # The service's own queue runs the built-in run types only.
    own = workflow_target(s.settings.task_queue, "TriggerWorkflow")
    r = await s.http.post(API, json=github_trigger() | {"target": own}, headers=s.bob)
    refused(r, ["body", "target", "task_queue"])
    r = await s.http.put(
        "/api/me/task-queues", json={"queues": [s.settings.task_queue]}, headers=s.bob
    )
    refused(r, ["body", "queues", 0])
    assert (await s.http.get(API, headers=s.bob)).json()["total"] == 0

    # Bob's own trigger, with a built-in run: allowed; pointed at Alice's queue: refused.
    bobs = (await s.create_trigger(github_trigger("bob's"), user=s.bob))["id"]
    r = await s.http.patch(
        f"{API}/{bobs}", json={"target": workflow_target(queue, "AliceDeploy")}, headers=s.bob
    )
    refused(r, ["body", "target", "task_queue"])
    assert (await post_github(s.http, bobs, delivery="b-1")).status_code == 202

    # Alice's trigger on her queue runs there.
    alices = await s.create_trigger(github_trigger("alice's") | {"target": workflow_target(queue)})
    async with Worker(s.client, task_queue=queue, workflows=[UserDeploy]):
        assert (await post_github(s.http, alices["id"], delivery="a-1")).status_code == 202
        handle = s.client.get_workflow_handle(run_workflow_id(alices["id"], "a-1"))

        async def done() -> str:
            return str(await handle.result())

        assert await eventually(done) == "deployed refs/heads/main"

    async def bobs_run() -> bool:
        return await runs_of(s.client, bobs) == [f"run:{bobs}:b-1"]

    await eventually(bobs_run)
    # Bob's run is the built-in one on the service's queue; Alice's queue saw hers only.
    assert (await s.client.get_workflow_handle(f"run:{bobs}:b-1").describe()).task_queue == (
        s.settings.task_queue
    )
    assert await on_queue(s, queue) == 1
    assert await count_runs(s.client, alices["id"]) == 1


async def test_grants_shares_and_losing_a_queue(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    queue, bobs_queue = (f"{who}-{uuid.uuid4().hex[:6]}" for who in ("alice", "bob"))
    await s.claim_queues(queue)
    await s.claim_queues(bobs_queue, user=s.bob)
    tid = (await s.create_trigger(github_trigger() | {"target": workflow_target(queue)}))["id"]
    url = f"{API}/{tid}"
    await s.http.put(f"{url}/shares", json={"user": "bob", "role": "editor"}, headers=s.alice)
    # An editor cannot point the owner's trigger at a queue the owner may not use...
    r = await s.http.patch(url, json={"target": workflow_target(bobs_queue)}, headers=s.bob)
    assert "owner" in refused(r, ["body", "target", "task_queue"])
    # ...nor at one of the owner's that the editor may not use; keeping it is fine.
    other = f"alice2-{uuid.uuid4().hex[:6]}"
    await s.claim_queues(other)
    r = await s.http.patch(url, json={"target": workflow_target(other)}, headers=s.bob)
    assert "for you" in refused(r, ["body", "target", "task_queue"])
    r = await s.http.patch(url, json={"name": "renamed"}, headers=s.bob)
    assert r.status_code == 200, r.text

    # A claim that an enabled trigger still uses cannot be dropped.
    r = await s.http.put("/api/me/task-queues", json={"queues": [other]}, headers=s.alice)
    assert tid in refused(r, ["body", "queues"], 409)
    assert (await s.http.post(f"{url}/disable", headers=s.alice)).status_code == 200
    r = await s.http.put("/api/me/task-queues", json={"queues": [other]}, headers=s.alice)
    assert r.status_code == 200 and r.json()["task_queues"] == [other]
    # Enabling a trigger whose queue was lost is refused.
    refused(await s.http.post(f"{url}/enable", headers=s.alice), ["target", "task_queue"])

    # The admin's path: a grant (which also makes the queue unclaimable by others).
    await _cli(s, "grant-queue", "alice", queue)
    assert queue in (await me(s, s.alice))["task_queues"]
    assert (await s.http.post(f"{url}/enable", headers=s.alice)).status_code == 200
    r = await s.http.put("/api/me/task-queues", json={"queues": [queue]}, headers=s.carol)
    refused(r, ["body", "queues", 0], 409)
    # Revoking refuses while the trigger is enabled, then takes it.
    assert "enabled triggers" in await _cli(s, "revoke-queue", "alice", queue, code=1)
    assert (await s.http.post(f"{url}/disable", headers=s.alice)).status_code == 200
    await _cli(s, "revoke-queue", "alice", queue)
    assert queue not in (await me(s, s.alice))["task_queues"]


async def _cli(s: Stack, *args: str, code: int = 0) -> str:
    """``triggers users ...`` against the stack's database, as an admin runs it."""
    env = {**os.environ, "TRIGGERS_DATABASE_URL": s.settings.resolved_database_url}
    env["TRIGGERS_TASK_QUEUE"] = s.settings.task_queue
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "workers.cli", "users", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == code, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr
