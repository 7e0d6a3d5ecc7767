"""Structured logs (README "Logs"): JSON lines with trigger, event, run and trace ids, one
record per event received, condition outcome, run started or deduplicated and source state
change; never a secret or a body, in the logs or in the spans; refusals are not errors."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from tests.conftest import eventually
from tests.helpers import SECRET, github_body, github_trigger, post_github
from triggers.core.events import run_workflow_id
from triggers.infra import logs, redaction, store
from triggers.infra.db import make_engine, session_factory, upgrade
from workers.devserver import DevServer
from workers.ports import free_port

MARKER = "body-marker-51c0ffee"


def test_json_lines_carry_known_fields_only_and_mask_held_secrets() -> None:
    out = io.StringIO()
    root = logging.getLogger()
    kept, level = list(root.handlers), root.level
    logs.setup("json", stream=out)
    try:
        log = logging.getLogger("triggers.test")
        with redaction.hold(["s3cr3t-value"]):
            log.info(
                "token s3cr3t-value seen",
                extra={"trigger_id": "t-1", "event_key": "k s3cr3t-value", "body": MARKER},
            )
            try:
                raise ValueError("boom s3cr3t-value")
            except ValueError:
                log.exception("failed")
    finally:
        root.handlers[:] = kept  # pytest's own capture handlers, as they were
        root.setLevel(level)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [x["message"] for x in lines] == ["token *** seen", "failed"]
    assert lines[0]["trigger_id"] == "t-1" and lines[0]["event_key"] == "k ***"
    assert lines[0]["level"] == "INFO" and lines[0]["logger"] == "triggers.test"
    assert "body" not in lines[0]
    assert "ValueError: boom ***" in lines[1]["exception"]
    assert "s3cr3t-value" not in out.getvalue() and MARKER not in out.getvalue()


async def _api_key(db: str) -> str:
    engine = make_engine(db)
    try:
        async with session_factory(engine)() as session:
            user = await store.create_user(session, name="logs")
            return await store.create_api_key(session, user=user)
    finally:
        await engine.dispose()


def _spawn(command: str, env: dict[str, str], log: Path, spans: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as err, spans.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "workers.cli", command], env=env, stdout=out, stderr=err
        )


def _records(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSON log, parsed (a line that is not JSON fails the test)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _find(records: list[dict[str, Any]], message: str, **fields: Any) -> list[dict[str, Any]]:
    return [
        r
        for r in records
        if r["message"] == message and all(r.get(k) == v for k, v in fields.items())
    ]


async def test_json_logs_of_a_webhook_and_a_source_name_ids_and_never_secrets_or_bodies(
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
        "TRIGGERS_TASK_QUEUE": f"jsonlogs-{uuid.uuid4().hex[:8]}",
        "TRIGGERS_SECRET_KEYS": secret_keys,
        "TRIGGERS_API_PORT": str(port),
        "TRIGGERS_LOG_FORMAT": "json",
        # Spans to stdout, so they are scanned too (and the records carry trace ids).
        "OTEL_TRACES_EXPORTER": "console",
        "PYTHONUNBUFFERED": "1",
    }
    w_log, a_log = tmp_path / "worker.log", tmp_path / "api.log"
    w_spans, a_spans = tmp_path / "worker.spans", tmp_path / "api.spans"
    worker = _spawn("worker", env, w_log, w_spans)
    api = _spawn("api", env, a_log, a_spans)
    auth = {"Authorization": f"Bearer {key}"}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:

            async def up() -> bool:
                assert api.poll() is None and worker.poll() is None, a_log.read_text()
                polling = any("polling" in r["message"] for r in _records(w_log))
                return polling and (await http.get("/healthz")).status_code == 200

            await eventually(up, timeout=30)
            hook = github_trigger() | {"condition": 'event.data.ref == "refs/heads/main"'}
            r = await http.post("/api/triggers", json=hook, headers=auth)
            assert r.status_code == 201, r.text
            tid = r.json()["id"]
            body = github_body(note=MARKER)
            for delivery in ("d1", "d1"):
                r = await post_github(http, tid, delivery=delivery, body=body)
                assert r.status_code == 202, r.text
            other = github_body(ref="refs/heads/dev", note=MARKER)
            assert (await post_github(http, tid, delivery="d2", body=other)).status_code == 202
            bad = await post_github(http, tid, delivery="d3", body=body, secret="wrong")
            assert bad.status_code == 401
            ends = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
            cron = {
                "name": "c",
                "provider": "cron",
                "config": {"cron": "* * * * * *", "end_at": ends},
            }
            r = await http.post("/api/triggers", json=cron, headers=auth)
            assert r.status_code == 201, r.text
            cid = r.json()["id"]
            run_id = run_workflow_id(tid, "d1")
            await eventually(lambda: client.get_workflow_handle(run_id).describe(), timeout=30)
            await client.get_workflow_handle(run_id).result()

            async def logged() -> bool:
                w = _records(w_log)
                return bool(
                    _find(w, "run started", event_key="d1")
                    and _find(w, "condition dropped", event_key="d2")
                    and _find(w, f"source of trigger {cid} is finished", trigger_id=cid)
                )

            await eventually(logged, timeout=30)
    finally:
        for proc in (api, worker):
            proc.send_signal(signal.SIGINT)
        codes = [await asyncio.to_thread(p.wait, 30) for p in (api, worker)]
    assert codes == [0, 0], (codes, a_log.read_text()[-2000:], w_log.read_text()[-2000:])
    w, a = _records(w_log), _records(a_log)
    ids = {"trigger_id": tid, "provider": "webhook", "run_workflow_id": run_id}
    (received,) = _find(w, "event received", event_id="d1", event_key="d1", **ids)
    (started,) = _find(w, "run started", event_key="d1", outcome="started", **ids)
    (passed,) = _find(w, "condition passed", event_key="d1", result="passed", **ids)
    assert len(received["trace_id"]) == 32
    assert started["trace_id"] == received["trace_id"] == passed["trace_id"]
    assert started["workflow_id"] == f"trigger:{tid}"
    assert received["trace_id"] in a_spans.read_text()  # the webhook's span began it
    (dedup,) = _find(a, "event deduplicated", event_key="d1", **ids)
    assert len(dedup["trace_id"]) == 32
    assert _find(w, "condition dropped", event_key="d2", result="dropped")
    assert not _find(w, "run started", event_key="d2")
    assert _find(w, f"source of trigger {cid} is finished", state="finished", provider="cron")
    # A refused signature is an answer, not an error; nothing here is one.
    assert not [r for r in w + a if r["level"] in ("ERROR", "CRITICAL")], [
        r for r in w + a if r["level"] in ("ERROR", "CRITICAL")
    ]
    for path in (w_log, a_log, w_spans, a_spans):
        text = path.read_text()
        assert SECRET not in text, path.name
        assert MARKER not in text, path.name
