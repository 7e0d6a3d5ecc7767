"""The dry run (``POST /api/triggers/{id}/test``) and the ``workflow`` target's input
mapping, against the real trigger workflow: a dry run decides exactly as real runs did."""

from __future__ import annotations

import json
import uuid
from typing import Any

from temporalio.worker import Replayer, Worker

from api.control import run_exists
from tests.conftest import Stack, eventually
from tests.helpers import github_body, github_trigger, post_github
from tests.user_workflows import UserEcho
from triggers.core.events import run_workflow_id, trigger_workflow_id
from workflows.run import RunWorkflow
from workflows.trigger import TriggerWorkflow

MAIN = 'event.data.ref == "refs/heads/main"'


async def status(s: Stack, tid: str) -> dict[str, Any]:
    data: dict[str, Any] = (await s.http.get(f"/api/triggers/{tid}/status", headers=s.alice)).json()
    return data


async def settle(s: Stack, tid: str, events: int, runs: int) -> dict[str, Any]:
    async def settled() -> dict[str, Any] | None:
        st = await status(s, tid)
        done = sum(st["filtered"].values()) == events and st["pending"] == 0
        return st if done and st["runs_started"] == runs else None

    return await eventually(settled)


async def dry_run(
    s: Stack, tid: str, body: dict[str, Any], user: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    r = await s.http.post(f"/api/triggers/{tid}/test", json=body, headers=user or s.alice)
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    return results


# Deliveries: two on main, two elsewhere, one without a ref (the condition fails on it).
SENDS: list[tuple[str, bytes]] = [
    ("d-main-1", github_body(ref="refs/heads/main")),
    ("d-dev", github_body(ref="refs/heads/dev")),
    ("d-noref", json.dumps({"repository": {"full_name": "acme/app"}}).encode()),
    ("d-tag", github_body(ref="refs/tags/v1")),
    ("d-main-2", github_body(ref="refs/heads/main", n=2)),
]


async def test_dry_run_matches_real_decisions(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    tid = (await s.create_trigger(github_trigger() | {"condition": MAIN}))["id"]
    for delivery, body in SENDS:
        assert (await post_github(s.http, tid, delivery=delivery, body=body)).status_code == 202
    st = await settle(s, tid, events=5, runs=2)
    assert st["filtered"] == {"passed": 2, "dropped": 2, "error": 1}

    results = await dry_run(s, tid, {"last": 5})
    assert [r["event_key"] for r in results] == [d for d, _ in SENDS]
    for r in results:
        started = await run_exists(s.client, run_workflow_id(tid, r["event_key"]))
        assert r["would_start"] is started, r
        assert r["run_id"] == run_workflow_id(tid, r["event_key"])
    outcomes = {r["event_key"]: r["condition"] for r in results}
    assert outcomes["d-main-1"] == {"result": "passed", "error": None}
    assert outcomes["d-dev"]["result"] == "dropped"
    assert outcomes["d-noref"]["result"] == "error" and "ref" in outcomes["d-noref"]["error"]
    assert st["condition_errors"][0]["error"] == outcomes["d-noref"]["error"]
    assert (await dry_run(s, tid, {"last": 2}))[0]["event_key"] == "d-tag"

    # The sample form, with the same events, gives the same answers.
    samples = [
        {"id": r["event_id"], "key": r["event_key"], "data": json.loads(body)}
        for r, (_, body) in zip(results, SENDS, strict=True)
    ]
    again = await dry_run(s, tid, {"events": samples})
    assert [(r["would_start"], r["condition"]) for r in again] == [
        (r["would_start"], r["condition"]) for r in results
    ]
    # Nothing was started by the dry runs.
    assert (await status(s, tid))["runs_started"] == 2


async def test_dry_run_access(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    tid = (await s.create_trigger(github_trigger() | {"condition": MAIN}))["id"]
    body = {"events": [{"id": "e1", "data": {"ref": "refs/heads/main"}}]}
    r = await s.http.post(f"/api/triggers/{tid}/test", json=body, headers=s.bob)
    assert r.status_code == 404
    share = {"user": "bob", "role": "viewer"}
    assert (await s.http.put(f"/api/triggers/{tid}/shares", json=share, headers=s.alice)).is_success
    (result,) = await dry_run(s, tid, body, user=s.bob)
    assert result["would_start"] is True and result["event_key"] == "e1"
    r = await s.http.post(f"/api/triggers/{tid}/test", json=body, headers=s.carol)
    assert r.status_code == 404
    # No workflow target: no input is shown.
    assert result["input"] is None


async def test_invalid_dry_run_bodies_name_the_field(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    tid = (await s.create_trigger(github_trigger()))["id"]
    cases: list[tuple[Any, list[Any]]] = [
        ({"events": [{"data": {}}]}, ["body", "events", 0, "id"]),
        ({"events": [{"id": "a"}, {"id": "b", "headers": {"x": 1}}]}, ["body", "events", 1]),
        ({"events": [{"id": "a", "bogus": 1}]}, ["body", "events", 0, "bogus"]),
        ({"events": [{"id": "a", "time": 5}]}, ["body", "events", 0, "time"]),
        ({"last": 0}, ["body", "last"]),
        ({"last": 21}, ["body", "last"]),
        ({}, ["body"]),
        ({"last": 1, "events": []}, ["body"]),
    ]
    for body, loc in cases:
        r = await s.http.post(f"/api/triggers/{tid}/test", json=body, headers=s.alice)
        assert r.status_code == 422, (body, r.text)
        locs = [d["loc"] for d in r.json()["detail"]]
        assert any(got[: len(loc)] == loc for got in locs), (body, locs)


async def test_workflow_target_input_mapping(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    queue = f"user-{uuid.uuid4().hex[:6]}"
    mapping = '{"ref": event.data.ref, "who": trigger.name}'
    body = github_trigger(name="mapper")
    body["target"] = {
        "kind": "workflow",
        "workflow_type": "UserEcho",
        "task_queue": queue,
        "input": mapping,
    }
    await s.claim_queues(queue)
    trigger = await s.create_trigger(body)
    tid = trigger["id"]
    assert trigger["target"]["input"] == mapping
    async with Worker(s.client, task_queue=queue, workflows=[UserEcho]):
        sends = [
            ("m-1", github_body(ref="refs/heads/main")),
            ("m-bad", json.dumps({"no": "ref"}).encode()),
            ("m-2", github_body(ref="refs/tags/v2")),
        ]
        for delivery, payload in sends:
            r = await post_github(s.http, tid, delivery=delivery, body=payload)
            assert r.status_code == 202
        for delivery, ref in (("m-1", "refs/heads/main"), ("m-2", "refs/tags/v2")):
            handle = s.client.get_workflow_handle(run_workflow_id(tid, delivery))

            async def done(h: Any = handle) -> Any:
                return await h.result()

            assert await eventually(done) == {"ref": ref, "who": "mapper"}
        st = await settle(s, tid, events=1, runs=2)
    # A mapping that fails drops the event, recorded like a condition error.
    assert st["filtered"] == {"error": 1}
    (err,) = st["condition_errors"]
    assert err["event_id"] == "m-bad" and err["error"].startswith("input mapping:")
    assert not await run_exists(s.client, run_workflow_id(tid, "m-bad"))

    results = await dry_run(s, tid, {"last": 3})
    assert [r["input"] for r in results] == [
        {"ref": "refs/heads/main", "who": "mapper"},
        None,
        {"ref": "refs/tags/v2", "who": "mapper"},
    ]
    assert [r["would_start"] for r in results] == [True, False, True]
    assert results[1]["condition"]["error"] == err["error"]
    # The mapping is evaluated inside the workflow: its history replays deterministically.
    history = await s.client.get_workflow_handle(trigger_workflow_id(tid)).fetch_history()
    await Replayer(workflows=[TriggerWorkflow, RunWorkflow]).replay_workflow(history)


async def test_workflow_target_without_mapping_shows_the_event(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    body = github_trigger()
    body["target"] = {"kind": "workflow", "workflow_type": "UserEcho", "task_queue": "q"}
    await s.claim_queues("q")
    tid = (await s.create_trigger(body))["id"]
    (r,) = await dry_run(s, tid, {"events": [{"id": "x", "data": {"ref": "r"}}]})
    assert r["input"]["key"] == "x" and r["input"]["data"] == {"ref": "r"}


async def test_invalid_input_mappings_answer_422(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    target = {"kind": "workflow", "workflow_type": "W", "task_queue": "q", "input": "{"}
    body = github_trigger() | {"target": target}
    r = await s.http.post("/api/triggers", json=body, headers=s.alice)
    assert r.status_code == 422, r.text
    (detail,) = r.json()["detail"]
    assert detail["loc"] == ["body", "target", "input"] and "line 1, column" in detail["msg"]
    tid = (await s.create_trigger(github_trigger()))["id"]
    r = await s.http.patch(f"/api/triggers/{tid}", json={"target": target}, headers=s.alice)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "target", "input"]
    # A mapping belongs to a workflow target only.
    run_target = {"kind": "run", "input": "event"}
    r = await s.http.post(
        "/api/triggers", json=github_trigger() | {"target": run_target}, headers=s.alice
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "target"]


async def test_recent_events_keep_twenty_and_large_data_by_reference(sqlite_stack: Stack) -> None:
    s = sqlite_stack
    tid = (await s.create_trigger(github_trigger() | {"condition": MAIN}))["id"]
    big = github_body(ref="refs/heads/main", blob="x" * 20_000)
    assert (await post_github(s.http, tid, delivery="big", body=big)).status_code == 202
    for i in range(21):
        assert (await post_github(s.http, tid, delivery=f"e{i}")).status_code == 202
    await settle(s, tid, events=22, runs=22)
    results = await dry_run(s, tid, {"last": 20})
    assert [r["event_key"] for r in results] == [f"e{i}" for i in range(1, 21)]
    # "big" has left the window of 20; ask for the whole window after one more large one.
    assert (await post_github(s.http, tid, delivery="big2", body=big)).status_code == 202
    await settle(s, tid, events=23, runs=23)
    last = (await dry_run(s, tid, {"last": 1}))[0]
    # Large data is read back from the claim-check store: the dry run decides on it whole.
    assert last["event_key"] == "big2" and last["data_truncated"] is False
    assert last["condition"]["result"] == "passed" and last["would_start"] is True
