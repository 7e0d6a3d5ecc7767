"""Secrets never ride an exception: a database whose error quotes the password leaves it in
no Temporal history, no file of Temporal's database, no log line of the worker or the API.
And the one log redaction step masks what the process holds, wherever it appears."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from temporalio.client import Client

from tests.conftest import eventually, make_stack
from tests.fake_pg import FakePostgres
from tests.worker_proc import WorkerProcess
from triggers.infra import redaction
from workers.devserver import DevServer

PASSWORD = "pw-7Hq2-quoted-by-the-server"
SECRET = "s3cr3t-for-the-filter-only"


@pytest.fixture
async def fake_pg() -> AsyncIterator[FakePostgres]:
    server = FakePostgres()
    await server.start()
    yield server
    await server.stop()


def _logged(logger: logging.Logger) -> tuple[io.StringIO, logging.Handler]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    redaction.install(handler)
    logger.addHandler(handler)
    return out, handler


def test_the_filter_masks_held_secrets_in_messages_arguments_and_tracebacks() -> None:
    logger = logging.getLogger(f"test.redaction.{uuid.uuid4().hex[:6]}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    out, handler = _logged(logger)
    try:
        with redaction.hold([SECRET, ""]):
            logger.info("message %s", SECRET)
            logger.info("in a URL: postgresql://u:%s@h/db", quote(SECRET + "/x", safe=""))
            logger.info("as a repr: %r", {"password": SECRET})
            try:
                try:
                    raise ValueError(f"driver said {SECRET}")
                except ValueError as err:
                    raise RuntimeError("wrapped") from err
            except RuntimeError:
                # The formatted traceback shows the cause and its message.
                logger.exception("failed with %s", SECRET)
            try:
                raise KeyError(SECRET)
            except KeyError:
                logger.warning("key", exc_info=True)
            held = out.getvalue()
        logger.info("released %s", SECRET)
    finally:
        logger.removeHandler(handler)
    assert SECRET not in held and quote(SECRET, safe="") not in held
    assert held.count(redaction.MASK) >= 5, held
    assert "Traceback" in held and "KeyError" in held and "driver said ***" in held
    # Released when the holder is done: masking is for what the process holds.
    assert out.getvalue().endswith(f"released {SECRET}\n")


def test_holds_are_counted_and_nested_values_mask_whole() -> None:
    inner = SECRET[:8]
    with redaction.hold([SECRET]), redaction.hold([SECRET, inner]):
        assert redaction.redact(f"a {SECRET} b {inner}") == "a *** b ***"
    with redaction.hold([SECRET]):
        with redaction.hold([SECRET]):
            pass
        assert redaction.redact(SECRET) == "***"  # still held by the outer holder
    assert redaction.redact(SECRET) == SECRET
    assert redaction.redact("x" + PASSWORD, extra=[PASSWORD]) == "x***"


async def test_a_database_error_quoting_the_password_reaches_nothing(
    tmp_path: Path,
    sqlite_url: str,
    secret_keys: str,
    fake_pg: FakePostgres,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # A Temporal server of this test's own that persists to a file we can read.
    temporal_dir = tmp_path / "temporal"
    server = DevServer(headless=True, db_filename=temporal_dir / "temporal.db")
    await server.start()
    queue = f"redact-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(
        temporal=server.address,
        database_url=sqlite_url,
        task_queue=queue,
        secret_keys=secret_keys,
        log=tmp_path / "worker.log",
    )
    texts: list[str] = []
    try:
        client = await Client.connect(server.address)
        await worker.start()
        async with make_stack(sqlite_url, client, queue, secret_keys) as s:
            r = await s.http.put(
                "/api/me/network-allowlist", json={"entries": ["127.0.0.1"]}, headers=s.alice
            )
            assert r.status_code == 200
            body = {
                "name": "orders",
                "provider": "sql_poll",
                "config": {
                    "url": f"postgresql+asyncpg://app@127.0.0.1:{fake_pg.port}/shop",
                    "query": "SELECT id, seq FROM orders WHERE seq >= :cursor ORDER BY seq",
                    "cursor_column": "seq",
                    "id_column": "id",
                    "initial_cursor": 0,
                    "interval": "1s",
                },
                "secrets": {"password": PASSWORD},
            }
            created = await s.create_trigger(body)
            tid = created["id"]
            texts.append(str(created))

            async def refused() -> dict[str, Any] | None:
                r = await s.http.get(f"/api/triggers/{tid}/status", headers=s.alice)
                st: dict[str, Any] = r.json()
                texts.append(r.text)
                error = st.get("last_error") or ""
                return st if "password authentication failed" in error else None

            st = await eventually(refused, timeout=60)
            # The server really got the password, and its answer really quoted it.
            assert PASSWORD in fake_pg.passwords
            assert "***" in st["last_error"], st["last_error"]
            texts.append((await s.http.get(f"/api/triggers/{tid}", headers=s.alice)).text)

            histories = [
                (
                    await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
                ).to_json()
                async for wf in client.list_workflows()
            ]
    finally:
        worker.stop()
        await server.stop()

    # The histories hold the failure (so the search can find it), without the password.
    assert any("password authentication failed" in h for h in histories)
    for h in histories:
        assert PASSWORD not in h
    # Temporal's own database: every file of it (the database, its WAL, its journal).
    files = [p for p in temporal_dir.iterdir() if p.is_file()]
    stored = b"".join(p.read_bytes() for p in files)
    assert b"password authentication failed" in stored, [p.name for p in files]
    assert PASSWORD.encode() not in stored
    # The worker's log (our loggers, the SDK's, the Rust core's stderr): the failure is
    # logged, masked.
    log = (tmp_path / "worker.log").read_text()
    assert "password authentication failed" in log
    assert PASSWORD not in log and quote(PASSWORD, safe="") not in log
    # The API's log records and answers.
    assert PASSWORD not in caplog.text
    for t in texts:
        assert PASSWORD not in t


async def test_the_fake_server_fails_a_real_driver_with_the_password_in_its_text(
    fake_pg: FakePostgres,
) -> None:
    """The scenario is real: unredacted, the driver's error carries the password."""
    engine = create_async_engine(f"postgresql+asyncpg://app:{PASSWORD}@127.0.0.1:{fake_pg.port}/x")
    try:
        with pytest.raises(Exception) as info:
            async with engine.connect():
                pass
    finally:
        await engine.dispose()
    assert PASSWORD in str(info.value)
