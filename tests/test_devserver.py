"""Tests for :mod:`workers.devserver` against real ``temporal server start-dev`` processes."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

import httpx
import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client, WorkflowExecutionStatus

from triggers.contracts.names import SEARCH_ATTRIBUTES
from workers.devserver import DevServer
from workers.ports import bind_free_port, free_port
from workers.processes import temporal_binary

START_TIMEOUT = 30.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _server_pids(port: int) -> list[int]:
    """Pids of live ``temporal server`` processes started with ``--port <port>`` (Linux)."""
    proc = Path("/proc")
    if not proc.is_dir():
        pytest.skip("needs /proc")
    found = []
    for entry in proc.iterdir():
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if b"start-dev" in args and str(port).encode() in args and state != "Z":
            found.append(int(entry.name))
    return found


async def _assert_gone(pid: int, timeout: float = 5.0) -> None:
    """Poll until ``pid`` no longer exists (a zombie still answers ``kill(pid, 0)``)."""
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still exists after stop()"
        await asyncio.sleep(0.05)


def test_free_port_and_binary() -> None:
    port = free_port()
    assert 0 < port < 65536
    binary = temporal_binary()
    assert os.access(binary, os.X_OK)


async def test_headless_in_memory_lifecycle(tmp_path: Path) -> None:
    server = DevServer(headless=True, log_file=tmp_path / "server.log")
    assert server.ui_url is None
    assert server.pid is None
    await server.start(timeout=START_TIMEOUT)
    pid = server.pid
    assert pid is not None and _pid_alive(pid)
    assert server.address.startswith("127.0.0.1:")
    assert _server_pids(int(server.address.rsplit(":", 1)[1])) == [pid]

    client = await Client.connect(server.address)
    response = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace="default")
    )
    for name, kind in SEARCH_ATTRIBUTES.items():
        assert kind == "Keyword"
        assert response.custom_attributes[name] == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD

    await server.stop()
    assert server.pid is None
    await _assert_gone(pid)
    await server.stop()  # idempotent


async def test_persistence_across_restarts(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "t.db"
    async with DevServer(headless=True, db_filename=db) as first:
        client = await Client.connect(first.address)
        await client.start_workflow("NoSuchWorkflow", id="persist-check", task_queue="nobody")
        first_pid = first.pid
    assert first_pid is not None
    await _assert_gone(first_pid)
    assert db.exists()

    async with DevServer(headless=True, db_filename=db) as second:
        client = await Client.connect(second.address)
        description = await client.get_workflow_handle("persist-check").describe()
        assert description.workflow_type == "NoSuchWorkflow"
        assert description.status == WorkflowExecutionStatus.RUNNING


async def test_dynamic_config_passthrough(tmp_path: Path) -> None:
    server = DevServer(
        headless=True,
        dynamic_config={"limit.historyCount.suggestContinueAsNew": 50},
        log_file=tmp_path / "server.log",
    )
    async with server:
        client = await Client.connect(server.address)
        info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
        assert info.server_version


async def test_ui_answers_http(tmp_path: Path) -> None:
    async with DevServer(log_file=tmp_path / "server.log") as server:
        assert server.ui_url is not None
        assert server.ui_url.startswith("http://127.0.0.1:")
        deadline = time.monotonic() + 15.0
        status: int | str = "no attempt"
        async with httpx.AsyncClient(trust_env=False, timeout=2.0) as http:
            while time.monotonic() < deadline:
                try:
                    status = (await http.get(server.ui_url + "/")).status_code
                except httpx.TransportError as exc:
                    status = repr(exc)
                if status == 200:
                    break
                await asyncio.sleep(0.1)
        assert status == 200


async def test_exit_on_busy_port_reports_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        port = bind_free_port(busy)
        busy.listen()
        server = DevServer(headless=True, port=port, log_file=log)
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="exited early") as info:
            await server.start(timeout=START_TIMEOUT)
    assert time.monotonic() - started < 10.0
    assert "address already in use" in str(info.value)
    assert server.pid is None
    assert _server_pids(port) == []


async def test_start_timeout_stops_process(tmp_path: Path) -> None:
    server = DevServer(headless=True, log_file=tmp_path / "server.log")
    with pytest.raises(RuntimeError, match="not healthy"):
        await server.start(timeout=0.001)
    assert server.pid is None
    assert _server_pids(int(server.address.rsplit(":", 1)[1])) == []
