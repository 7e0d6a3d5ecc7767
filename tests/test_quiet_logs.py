"""The worker's and the API's logs show real problems only: a failed or terminated run, and
the refusals a client is expected to get (401, 404, 409), log no traceback and no
"exception was never retrieved", also when the processes are stopped with Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client, WorkflowExecutionStatus

from tests.conftest import eventually
from tests.helpers import github_trigger, post_github
from triggers.core.events import run_workflow_id
from triggers.infra import store
from triggers.infra.db import make_engine, session_factory, upgrade
from workers.devserver import DevServer
from workers.ports import free_port

NOISE = ("Traceback", "never retrieved", "Task was destroyed", "Unhandled")


async def _api_key(db: str) -> str:
    engine = make_engine(db)
    try:
        async with session_factory(engine)() as session:
            user = await store.create_user(session, name="logs")
            return await store.create_api_key(session, user=user)
    finally:
        await engine.dispose()


def _spawn(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "workers.cli", command],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _graph_trigger(graph: dict[str, Any]) -> dict[str, Any]:
    return github_trigger() | {"target": {"kind": "graph", "graph": graph}}


async def test_failed_and_terminated_runs_and_refusals_log_no_traceback(
    temporal: DevServer, client: Client, secret_keys: str, tmp_path: Path
) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'logs.db'}"
    await asyncio.to_thread(upgrade, db)
    key = await _api_key(db)
    port = free_port()
    env = {
        **os.environ,
        "TRIGGERS_TEMPORAL_ADDRESS": temporal.address,
        "TRIGGERS_DATABASE_URL": db,
        "TRIGGERS_TASK_QUEUE": f"logs-{uuid.uuid4().hex[:8]}",
        "TRIGGERS_SECRET_KEYS": secret_keys,
        "TRIGGERS_API_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
    }
    worker_log, api_log = tmp_path / "worker.log", tmp_path / "api.log"
    worker = _spawn("worker", env, worker_log)
    api = _spawn("api", env, api_log)
    auth = {"Authorization": f"Bearer {key}"}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:

            async def up() -> bool:
                assert api.poll() is None and worker.poll() is None, api_log.read_text()
                return "polling task queue" in worker_log.read_text() and (
                    (await http.get("/healthz")).status_code == 200
                )

            await eventually(up, timeout=30)
            # A run that fails: its http_request node is refused (no allowlist for loopback).
            failing = _graph_trigger(
                {"nodes": [{"id": "call", "type": "http_request", "url": "'http://127.0.0.1:9/'"}]}
            )
            fid = (await http.post("/api/triggers", json=failing, headers=auth)).json()["id"]
            # A run that waits, to be terminated.
            waiting = _graph_trigger({"nodes": [{"id": "wait", "type": "delay", "duration": 600}]})
            wid = (await http.post("/api/triggers", json=waiting, headers=auth)).json()["id"]
            for tid in (fid, wid):
                assert (await post_github(http, tid, delivery="d1")).status_code == 202

            failed = client.get_workflow_handle(run_workflow_id(fid, "d1"))
            held = client.get_workflow_handle(run_workflow_id(wid, "d1"))

            async def status_is(handle: Any, status: WorkflowExecutionStatus) -> bool:
                return bool((await handle.describe()).status == status)

            await eventually(lambda: status_is(failed, WorkflowExecutionStatus.FAILED))
            await eventually(lambda: status_is(held, WorkflowExecutionStatus.RUNNING))
            await held.terminate(reason="test")
            # And one still running when the processes are stopped.
            assert (await post_github(http, wid, delivery="left")).status_code == 202
            left = client.get_workflow_handle(run_workflow_id(wid, "left"))
            await eventually(lambda: status_is(left, WorkflowExecutionStatus.RUNNING))

            # The refusals a client is expected to get.
            assert (await http.get("/api/triggers")).status_code == 401
            assert (
                await http.get("/api/triggers", headers={"Authorization": "Bearer no"})
            ).status_code == 401
            assert (
                await http.get(f"/api/triggers/{uuid.uuid4()}", headers=auth)
            ).status_code == 404
            assert (
                await http.post(f"/api/triggers/{wid}/disable", headers=auth)
            ).status_code == 200
            assert (await post_github(http, wid, delivery="d2")).status_code == 409
            assert (await post_github(http, fid, delivery="d3", secret="wrong")).status_code == 401
            assert (await post_github(http, str(uuid.uuid4()), delivery="d4")).status_code == 404
            r = await http.post(f"/webhooks/github/{fid}", content=b"{}", headers=auth)
            assert r.status_code == 401  # unsigned

            # Both runs are over and the trigger workflows have gone on (their next workflow
            # tasks ran): whatever they would log about it is in the log by now.
            assert (await post_github(http, fid, delivery="after")).status_code == 202
            await eventually(
                lambda: status_is(
                    client.get_workflow_handle(run_workflow_id(fid, "after")),
                    WorkflowExecutionStatus.FAILED,
                )
            )
            r = await http.get(f"/api/triggers/{fid}/status", headers=auth)
            assert r.status_code == 200, r.text
    finally:
        for proc in (api, worker):
            proc.send_signal(signal.SIGINT)
        codes = [await asyncio.to_thread(p.wait, 30) for p in (api, worker)]
    await left.terminate(reason="test over")  # it ran until the worker stopped
    worker_text, api_text = worker_log.read_text(), api_log.read_text()
    for name, text in (("worker", worker_text), ("api", api_text)):
        found = [n for n in NOISE if n in text]
        assert not found, f"{name} log has {found}:\n{text[-4000:]}"
    assert codes == [0, 0], (codes, api_text[-2000:], worker_text[-2000:])
    # The refusals are in the access log, as answers, not as errors.
    assert '"GET /api/triggers HTTP/1.1" 401' in api_text
    assert " 404" in api_text and " 409" in api_text
