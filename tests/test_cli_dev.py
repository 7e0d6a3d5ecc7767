"""The README's first command: ``triggers dev`` brings up everything and stops cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import eventually
from tests.helpers import github_trigger, post_github
from workers.devserver import temporal_binary
from workers.ports import free_port


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


async def test_dev_command_end_to_end(tmp_path: Path) -> None:
    port, ui_port, api_port = free_port(), free_port(), free_port()
    env = {
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
    try:

        async def started() -> bool:
            assert proc.poll() is None, log.read_text()
            return "Ctrl-C stops everything" in log.read_text()

        await eventually(started, timeout=60)
        text = log.read_text()
        assert f"http://127.0.0.1:{api_port}" in text
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
