"""The README's first command: ``triggers dev`` brings up everything and stops cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import eventually
from tests.helpers import github_trigger, post_github
from workers.ports import free_port
from workers.processes import temporal_binary


def _processes_with(arg: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if arg.encode() in cmdline and state != "Z":
            pids.append(int(proc.name))
    return pids


def _start_dev(
    tmp_path: Path, **more_env: str
) -> tuple[subprocess.Popen[bytes], Path, tuple[int, int, int]]:
    """``triggers dev`` in ``tmp_path`` on free ports; its process, log and ports."""
    port, ui_port, api_port = free_port(), free_port(), free_port()
    env = {
        **more_env,
        **os.environ,
        "TRIGGERS_TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
        "TRIGGERS_UI_PORT": str(ui_port),
        "TRIGGERS_API_PORT": str(api_port),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("TRIGGERS_DATABASE_URL", None)
    log = tmp_path / "dev.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "dev"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return proc, log, (port, ui_port, api_port)


async def _started(proc: subprocess.Popen[bytes], log: Path) -> None:
    async def started() -> bool:
        assert proc.poll() is None, log.read_text()
        return "Ctrl-C stops everything" in log.read_text()

    await eventually(started, timeout=60)


async def test_dev_command_end_to_end(tmp_path: Path) -> None:
    metrics_port = free_port()
    proc, log, (port, ui_port, api_port) = _start_dev(
        tmp_path, TRIGGERS_WORKER_METRICS_PORT=str(metrics_port)
    )
    try:
        await _started(proc, log)
        text = log.read_text()
        assert f"http://127.0.0.1:{api_port}" in text
        # Both metrics endpoints are printed (one process: one registry behind both).
        assert f"Metrics      http://127.0.0.1:{api_port}/metrics" in text
        assert f"http://127.0.0.1:{metrics_port}/metrics" in text
        assert f"http://127.0.0.1:{ui_port}" in text
        key = (tmp_path / ".triggers" / "api-key").read_text().strip()
        assert key in text
        assert (tmp_path / ".triggers" / "triggers.db").exists()

        base = f"http://127.0.0.1:{api_port}"
        auth = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            assert (await http.get("/readyz")).json()["ready"] is True
            r = await http.post("/api/triggers", json=github_trigger(), headers=auth)
            assert r.status_code == 201, r.text
            tid = r.json()["id"]
            for i in range(3):
                sent = await post_github(http, tid, delivery="cli-1")
                assert sent.status_code == 202
                assert sent.json()["duplicate"] is (i > 0)
            ui = await http.get(f"http://127.0.0.1:{ui_port}/")
            assert ui.status_code == 200
            # The builder page, at the URL the command printed.
            assert f"Builder      {base}/" in text
            builder = await http.get("/", follow_redirects=True)
            assert builder.status_code == 200 and 'name="api_key"' in builder.text

        async def listed() -> list[dict[str, object]]:
            out = await asyncio.to_thread(
                subprocess.run,
                [
                    temporal_binary(),
                    "workflow",
                    "list",
                    "--address",
                    f"127.0.0.1:{port}",
                    "--query",
                    f'TriggerId="{tid}"',
                    "--output",
                    "json",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            rows: list[dict[str, object]] = json.loads(out.stdout or "[]")
            return rows if len(rows) == 2 else []  # visibility lags a moment

        # The trigger workflow carries TriggerId too; the workflow type tells it apart.
        rows = await eventually(listed)
        ids = sorted((r["type"]["name"], r["execution"]["workflowId"]) for r in rows)  # type: ignore[index]
        assert ids == [("RunWorkflow", f"run:{tid}:cli-1"), ("TriggerWorkflow", f"trigger:{tid}")]

        async def scraped() -> list[str]:
            async with httpx.AsyncClient(timeout=10) as http:
                texts = [
                    (await http.get(f"{base}/metrics")).text,
                    (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text,
                ]
            want = 'triggers_runs_started_total{provider="webhook"} 1.0'
            return texts if all(want in t for t in texts) else []

        for text in await eventually(scraped):
            assert 'triggers_events_received_total{provider="webhook"} 3.0' in text
            assert 'triggers_duplicates_total{provider="webhook",stage="api"} 2.0' in text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = await asyncio.to_thread(proc.wait, 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, log.read_text()[-2000:]

    async def no_orphans() -> bool:
        return not _processes_with(f"{port}")

    await eventually(no_orphans, timeout=10)


async def test_dev_command_exits_when_its_temporal_server_dies(tmp_path: Path) -> None:
    proc, log, (port, _ui_port, api_port) = _start_dev(tmp_path)
    try:
        await _started(proc, log)
        [server] = _processes_with(f"{port}")
        killed = time.monotonic()
        os.kill(server, signal.SIGKILL)
        # Noticed at once: within a few seconds, the command has stopped everything.
        try:
            code = await asyncio.to_thread(proc.wait, 10)
        except subprocess.TimeoutExpired:
            raise AssertionError("still running:\n" + log.read_text()[-3000:]) from None
        print(f"triggers dev exited {time.monotonic() - killed:.2f}s after its server died")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert code == 1, text[-2000:]
    assert "error: the Temporal dev server (at 127.0.0.1:" in text, text[-2000:]
    assert "was killed by SIGKILL while `triggers dev` was running" in text
    assert "Start `triggers dev` again." in text
    assert "Traceback" not in text, text[-3000:]
    with contextlib.suppress(httpx.TransportError):
        async with httpx.AsyncClient(timeout=2) as http:
            r = await http.get(f"http://127.0.0.1:{api_port}/healthz")
            raise AssertionError(f"the API still answers: {r.status_code}")
